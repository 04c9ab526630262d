print("custom pipeline")
