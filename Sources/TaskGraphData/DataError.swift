/// An error reading or preparing data: the file, the place in it, and what was expected.
///
/// `description` is one line in the compiler style,
/// `flights.csv:12:5: expected a number in column 'dep_delay', found 'abc'`, so that an editor
/// or a terminal can jump to the place. `line` is 1-based and counts physical lines (a quoted
/// field that spans lines counts each of them); `column` is the 1-based field index in the
/// record (for `.npy` files, the element column).
public struct DataError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What kind of failure this is. A struct over a private enum so that codes can be added
  /// without breaking exhaustive `switch`es in client code.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: String, Hashable, Sendable {
      case io, unsupportedFormat, emptyFile, noDataRows, raggedRow, notANumber
      case unterminatedQuote, unexpectedQuote, duplicateColumn, unknownColumn
      case missingLabelColumn, missingFeatureColumn, noFeatures
      case invalidIndex, corruptGzip
      case npyBadMagic, npyBadHeader, npyUnsupportedDtype, npyFortranOrder, npyTruncated
      case invalidShard, invalidText, tooLarge, notARegularFile
    }
    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

    /// The file could not be opened, read or written.
    public static let io = Code(.io)
    /// The file name has no extension this pipeline can read.
    public static let unsupportedFormat = Code(.unsupportedFormat)
    /// The file holds no header (or nothing at all).
    public static let emptyFile = Code(.emptyFile)
    /// The file has a header but no data rows.
    public static let noDataRows = Code(.noDataRows)
    /// A record has a different number of fields than the header.
    public static let raggedRow = Code(.raggedRow)
    /// A numeric column holds a value that is not a finite decimal number (`inf`, `1e400`,
    /// `0x10` and `nan` are not), or a `.npy` element is infinite or NaN.
    public static let notANumber = Code(.notANumber)
    /// A quoted field is not closed before the end of the file.
    public static let unterminatedQuote = Code(.unterminatedQuote)
    /// A quote appears inside an unquoted field, or text follows a closing quote.
    public static let unexpectedQuote = Code(.unexpectedQuote)
    /// Two header columns have the same name.
    public static let duplicateColumn = Code(.duplicateColumn)
    /// An option names a column the file does not have.
    public static let unknownColumn = Code(.unknownColumn)
    /// The label column is not in the file.
    public static let missingLabelColumn = Code(.missingLabelColumn)
    /// A feature column the fitted pipeline needs is not in the file.
    public static let missingFeatureColumn = Code(.missingFeatureColumn)
    /// The options leave no feature column.
    public static let noFeatures = Code(.noFeatures)
    /// A LIBSVM feature index is zero, negative, not an integer, or not increasing.
    public static let invalidIndex = Code(.invalidIndex)
    /// A `.gz` file is not a valid gzip stream.
    public static let corruptGzip = Code(.corruptGzip)
    /// A `.npy` file does not start with the NumPy magic string.
    public static let npyBadMagic = Code(.npyBadMagic)
    /// A `.npy` header cannot be parsed.
    public static let npyBadHeader = Code(.npyBadHeader)
    /// A `.npy` element type other than little-endian float32 or float64.
    public static let npyUnsupportedDtype = Code(.npyUnsupportedDtype)
    /// A `.npy` array stored in Fortran (column-major) order.
    public static let npyFortranOrder = Code(.npyFortranOrder)
    /// A `.npy` file shorter than its header says.
    public static let npyTruncated = Code(.npyTruncated)
    /// A shard index outside `0..<count`, or a count below 1.
    public static let invalidShard = Code(.invalidShard)
    /// A header name or a categorical value that is not valid UTF-8.
    public static let invalidText = Code(.invalidText)
    /// The file implies more memory than `DataLimits` allows: a `.npy` shape, a LIBSVM feature
    /// index, a one-hot encoding, the rows read, or a gzip file's decompressed size.
    public static let tooLarge = Code(.tooLarge)
    /// The path names a directory, a FIFO, a device or a socket rather than a regular file.
    public static let notARegularFile = Code(.notARegularFile)

    /// The code's name, e.g. `notANumber`.
    public var description: String { wrapped.rawValue }
  }

  /// The kind of failure.
  public var code: Code
  /// What went wrong and what was expected, in one sentence without location.
  public var message: String
  /// The path of the file, as the caller gave it.
  public var file: String?
  /// The 1-based physical line, when known.
  public var line: Int?
  /// The 1-based column (field index), when known.
  public var column: Int?

  /// Creates an error.
  public init(
    _ code: Code, _ message: String, file: String? = nil, line: Int? = nil, column: Int? = nil
  ) {
    self.code = code
    self.message = message
    self.file = file
    self.line = line
    self.column = column
  }

  /// `file:line:column: message`, leaving out the parts that are unknown.
  public var description: String {
    var location = ""
    if let file {
      location = file
      if let line {
        location += ":\(line)"
        if let column { location += ":\(column)" }
      }
      location += ": "
    }
    return location + message
  }
}
