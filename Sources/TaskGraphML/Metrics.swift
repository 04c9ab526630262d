import Foundation

/// Regression and classification metrics over predictions and labels of equal length.
///
/// All are O(n) except `rocAUC`, O(n log n).
public enum Metrics {
  /// Mean squared error `(1/n) Σ (pᵢ − yᵢ)²`.
  public static func meanSquaredError(_ predictions: [Double], _ labels: [Double]) -> Double {
    check(predictions, labels)
    var s = 0.0
    for i in labels.indices {
      let r = predictions[i] - labels[i]
      s += r * r
    }
    return s / Double(labels.count)
  }

  /// Root of the mean squared error.
  public static func rootMeanSquaredError(_ predictions: [Double], _ labels: [Double]) -> Double {
    meanSquaredError(predictions, labels).squareRoot()
  }

  /// Mean absolute error `(1/n) Σ |pᵢ − yᵢ|`.
  public static func meanAbsoluteError(_ predictions: [Double], _ labels: [Double]) -> Double {
    check(predictions, labels)
    var s = 0.0
    for i in labels.indices { s += abs(predictions[i] - labels[i]) }
    return s / Double(labels.count)
  }

  /// The coefficient of determination `1 − SS_res / SS_tot` (scikit-learn's `r2_score`).
  /// For constant labels it is 1 if the predictions are exact and 0 otherwise.
  public static func r2(_ predictions: [Double], _ labels: [Double]) -> Double {
    check(predictions, labels)
    let mean = labels.reduce(0, +) / Double(labels.count)
    var res = 0.0
    var tot = 0.0
    for i in labels.indices {
      let r = labels[i] - predictions[i]
      let c = labels[i] - mean
      res += r * r
      tot += c * c
    }
    if tot == 0 { return res == 0 ? 1 : 0 }
    return 1 - res / tot
  }

  /// Mean binary log-loss `−(1/n) Σ yᵢ log pᵢ + (1 − yᵢ) log(1 − pᵢ)` of probabilities,
  /// clipped to `[1e-15, 1 − 1e-15]`.
  public static func logLoss(probabilities: [Double], _ labels: [Double]) -> Double {
    check(probabilities, labels)
    let eps = 1e-15
    var s = 0.0
    for i in labels.indices {
      let p = min(max(probabilities[i], eps), 1 - eps)
      s -= labels[i] * log(p) + (1 - labels[i]) * log(1 - p)
    }
    return s / Double(labels.count)
  }

  /// The fraction of rows whose predicted class (probability ≥ `threshold`) equals the
  /// 0/1 label.
  public static func accuracy(
    probabilities: [Double], _ labels: [Double], threshold: Double = 0.5
  ) -> Double {
    check(probabilities, labels)
    var hits = 0
    for i in labels.indices where (probabilities[i] >= threshold ? 1.0 : 0.0) == labels[i] {
      hits += 1
    }
    return Double(hits) / Double(labels.count)
  }

  /// Area under the ROC curve of `scores` for 0/1 labels, by the rank-sum (Mann–Whitney)
  /// statistic with tied scores given their average rank — equal to the probability that
  /// a random positive outscores a random negative, ties counting ½.
  ///
  /// Traps unless both classes occur.
  public static func rocAUC(scores: [Double], _ labels: [Double]) -> Double {
    check(scores, labels)
    let order = scores.indices.sorted { scores[$0] < scores[$1] }
    var positiveRankSum = 0.0
    var positives = 0.0
    var i = 0
    while i < order.count {
      var j = i
      while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
      // Ranks are 1-based; the tie group i...j shares the average rank.
      let rank = Double(i + j + 2) / 2
      for k in i...j where labels[order[k]] == 1 {
        positiveRankSum += rank
        positives += 1
      }
      i = j + 1
    }
    let negatives = Double(labels.count) - positives
    precondition(positives > 0 && negatives > 0, "ROC AUC needs both classes")
    return (positiveRankSum - positives * (positives + 1) / 2) / (positives * negatives)
  }

  private static func check(_ a: [Double], _ b: [Double]) {
    precondition(a.count == b.count, "lengths \(a.count) and \(b.count) differ")
    precondition(!a.isEmpty, "no rows")
  }
}
