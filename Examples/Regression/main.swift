print("regression")
