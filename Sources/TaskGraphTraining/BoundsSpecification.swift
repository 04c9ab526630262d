import Foundation
import TaskGraphML

/// Box constraints as a user gives them, before the features are known: a bound for every
/// coefficient, bounds by feature name, or both (a name's own bound wins). Bounds are in the
/// features' original units; with standardisation they are scaled to the trained units
/// (`w_trained = w · scale`, so a bound `u` becomes `u · scale`). The intercept is never
/// bounded.
public struct BoundsSpecification: Sendable, Hashable, Codable {
  /// The lower bound of every coefficient not named in `lowerByName` (nil: none).
  public var lower: Double?
  /// Lower bounds by feature name (one-hot features as `column=value`).
  public var lowerByName: [String: Double]
  /// The upper bound of every coefficient not named in `upperByName` (nil: none).
  public var upper: Double?
  /// Upper bounds by feature name.
  public var upperByName: [String: Double]

  /// A specification from its parts.
  public init(
    lower: Double? = nil, lowerByName: [String: Double] = [:], upper: Double? = nil,
    upperByName: [String: Double] = [:]
  ) {
    self.lower = lower
    self.lowerByName = lowerByName
    self.upper = upper
    self.upperByName = upperByName
  }

  /// Parses `--lower`/`--upper` values: comma-separated entries, each a number (every
  /// coefficient) or `name=number` (split at the last `=`, so one-hot names work).
  public static func parse(lower: String?, upper: String?, nonnegative: Bool) throws
    -> BoundsSpecification?
  {
    guard lower != nil || upper != nil || nonnegative else { return nil }
    var spec = BoundsSpecification()
    func entries(_ text: String, flag: String) throws -> (Double?, [String: Double]) {
      var all: Double?
      var named: [String: Double] = [:]
      for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
        let entry = raw.trimmingCharacters(in: .whitespaces)
        if let eq = entry.lastIndex(of: "=") {
          let name = String(entry[..<eq])
          let value = String(entry[entry.index(after: eq)...])
          guard !name.isEmpty, let v = Double(value), !v.isNaN else {
            throw TrainingError(
              code: .invalidConfiguration,
              message: "\(flag): expected name=number, found '\(entry)'")
          }
          guard named[name] == nil else {
            throw TrainingError(
              code: .invalidConfiguration, message: "\(flag): '\(name)' is given twice")
          }
          named[name] = v
        } else {
          guard let v = Double(entry), !v.isNaN else {
            throw TrainingError(
              code: .invalidConfiguration,
              message: "\(flag): expected a number or name=number, found '\(entry)'")
          }
          guard all == nil else {
            throw TrainingError(
              code: .invalidConfiguration, message: "\(flag): more than one bound for all features")
          }
          all = v
        }
      }
      return (all, named)
    }
    if let lower { (spec.lower, spec.lowerByName) = try entries(lower, flag: "--lower") }
    if let upper { (spec.upper, spec.upperByName) = try entries(upper, flag: "--upper") }
    if nonnegative {
      if let l = spec.lower, l < 0 {
        throw TrainingError(
          code: .invalidConfiguration, message: "--nonnegative contradicts --lower \(l)")
      }
      spec.lower = max(spec.lower ?? 0, 0)
      for (name, l) in spec.lowerByName where l < 0 {
        throw TrainingError(
          code: .invalidConfiguration, message: "--nonnegative contradicts --lower \(name)=\(l)")
      }
    }
    return spec
  }

  /// The effective (lower, upper) of the default and of every named feature.
  private var pairs: [(String?, Double, Double)] {
    var out: [(String?, Double, Double)] = [(nil, lower ?? -.infinity, upper ?? .infinity)]
    for name in Set(lowerByName.keys).union(upperByName.keys).sorted() {
      out.append(
        (name, lowerByName[name] ?? lower ?? -.infinity, upperByName[name] ?? upper ?? .infinity))
    }
    return out
  }

  /// Why these bounds cannot be used, or `nil`.
  public func firstProblem() -> String? {
    for (name, lo, hi) in pairs {
      let which = name.map { "for '\($0)'" } ?? "for every coefficient"
      if lo.isNaN || hi.isNaN { return "--lower/--upper: a bound \(which) is not a number" }
      if lo > hi { return "--lower exceeds --upper \(which) (\(lo) > \(hi))" }
      if lo == .infinity || hi == -.infinity {
        return "--lower/--upper: the range \(which) is empty"
      }
    }
    return nil
  }

  /// Bounds that stand for these before the features are known (for validating the
  /// configuration): the loosest of them, on one coefficient.
  var representative: Bounds {
    let p = pairs
    return Bounds(lower: [p.map(\.1).min()!], upper: [p.map(\.2).max()!])
  }

  /// The bounds of every coefficient in the trained units.
  ///
  /// - Parameters:
  ///   - featureNames: the features after one-hot encoding.
  ///   - scales: the standardisation scales (nil: none).
  /// - Throws: `TrainingError` if a name matches no feature.
  public func resolve(featureNames: [String], scales: [Double]?) throws -> Bounds {
    let known = Set(featureNames)
    for name in Set(lowerByName.keys).union(upperByName.keys).sorted() where !known.contains(name) {
      let some = featureNames.prefix(8).joined(separator: ", ")
      throw TrainingError(
        code: .invalidConfiguration,
        message:
          "--lower/--upper: no feature named '\(name)' (features: \(some)\(featureNames.count > 8 ? ", …" : ""))"
      )
    }
    var lo = [Double]()
    var hi = [Double]()
    lo.reserveCapacity(featureNames.count)
    hi.reserveCapacity(featureNames.count)
    for (j, name) in featureNames.enumerated() {
      let s = scales?[j] ?? 1
      lo.append((lowerByName[name] ?? lower ?? -.infinity) * s)
      hi.append((upperByName[name] ?? upper ?? .infinity) * s)
    }
    return Bounds(lower: lo, upper: hi)
  }
}
