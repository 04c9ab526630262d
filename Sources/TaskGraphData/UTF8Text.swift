/// Strict UTF-8 decoding for the text a file contributes to a model (CSV header names and
/// categorical values). Invalid bytes are an error rather than being replaced by U+FFFD:
/// replacing would merge distinct values (`caf\xE9` and `caf\xE8` both become `caf\u{FFFD}`)
/// and store names that match nothing in the file.
enum UTF8Text {
  /// The bytes as a string, or nil if they are not valid UTF-8.
  static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
    String(validating: bytes, as: UTF8.self)
  }

  /// The bytes spelled out for a message: valid characters as they are, each invalid byte as
  /// `\xNN`; and the 1-based position of the first invalid byte.
  static func describe(_ bytes: UnsafeBufferPointer<UInt8>) -> (
    text: String, firstInvalid: Int?
  ) {
    var parser = Unicode.UTF8.ForwardParser()
    var input = bytes.makeIterator()
    var text = ""
    var offset = 0
    var firstInvalid: Int? = nil
    while true {
      switch parser.parseScalar(from: &input) {
      case .valid(let encoded):
        text.unicodeScalars.append(Unicode.UTF8.decode(encoded))
        offset += encoded.count
      case .error(let length):
        if firstInvalid == nil { firstInvalid = offset + 1 }
        for k in offset..<(offset + length) {
          let hex = String(bytes[k], radix: 16, uppercase: true)
          text += "\\x" + (hex.count == 1 ? "0" + hex : hex)
        }
        offset += length
      case .emptyInput:
        return (text, firstInvalid)
      }
    }
  }

  /// The message for invalid UTF-8 in `what` (e.g. `column 'city'`).
  static func message(_ bytes: UnsafeBufferPointer<UInt8>, in what: String) -> String {
    let (text, first) = describe(bytes)
    let p = bytes
    let n = bytes.count
    var message =
      "expected UTF-8 text in \(what), found '\(text)' (invalid byte at position \(first ?? 1))"
    // A UTF-16 byte-order mark at the start of the file says why.
    if n >= 2 && ((p[0] == 0xFF && p[1] == 0xFE) || (p[0] == 0xFE && p[1] == 0xFF)) {
      message += "; the file looks like UTF-16, save it as UTF-8"
    }
    return message
  }
}
