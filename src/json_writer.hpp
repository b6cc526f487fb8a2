// JSON output shared by the results writer (src/report.cpp) and the trace
// writers (src/trace.cpp): json.dumps' layout and escaping, so that files
// match the Python seed's byte for byte. Private to the library: included in
// the global module fragment of those two files only.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace stichotrope::detail::json {

/// Python's repr() of a float, as json.dumps writes it.
inline std::string python_float(double v) {
  if (!std::isfinite(v)) return v > 0 ? "Infinity" : (v < 0 ? "-Infinity" : "NaN");
  if (v == 0.0) return "0.0";
  char buf[64];
  const double a = std::fabs(v);
  const bool fixed = a >= 1e-4 && a < 1e16;
  auto [end, ec] =
      std::to_chars(buf, buf + sizeof buf, v, fixed ? std::chars_format::fixed : std::chars_format::scientific);
  std::string s(buf, end);
  if (fixed && s.find('.') == std::string::npos) s += ".0";
  if (!fixed) {
    // to_chars writes "1e+16"; Python writes the same, but "1e-05" as "1e-05" too.
    return s;
  }
  return s;
}

inline void hex4(std::string& out, unsigned v) {
  static constexpr char digits[] = "0123456789abcdef";
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out += digits[(v >> shift) & 0xFu];
}

/// JSON string with only ASCII inside (json.dumps' ensure_ascii): control and
/// non-ASCII characters as \uXXXX, invalid UTF-8 bytes as U+FFFD.
inline void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20)
          hex4(out, c);
        else
          out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence strictly (no overlongs, no surrogates).
    unsigned len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF)
      len = 2, cp = c & 0x1Fu;
    else if (c >= 0xE0 && c <= 0xEF)
      len = 3, cp = c & 0x0Fu;
    else if (c >= 0xF0 && c <= 0xF4)
      len = 4, cp = c & 0x07u;
    bool ok = len != 0 && i + len <= s.size();
    for (unsigned k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0u) != 0x80u)
        ok = false;
      else
        cp = (cp << 6) | (cc & 0x3Fu);
    }
    if (ok &&
        ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
      ok = false;
    if (!ok) {
      hex4(out, 0xFFFD);
      ++i;
      continue;
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      hex4(out, 0xD800 + (cp >> 10));
      hex4(out, 0xDC00 + (cp & 0x3FFu));
    } else {
      hex4(out, cp);
    }
    i += len;
  }
  out += '"';
}

/// Writes JSON with json.dumps' layout: "key": value, items separated by
/// "," and a newline plus indentation (or ", " on one line when indent < 0).
class json_writer {
public:
  explicit json_writer(int indent) : indent_(indent) {}

  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }
  void key(std::string_view k) {
    item();
    json_string(out_, k);
    out_ += ": ";
    after_key_ = true;
  }
  void value(std::string_view s) {
    item();
    json_string(out_, s);
  }
  void value(const char* s) { value(std::string_view(s)); }
  void value(std::uint64_t v) {
    item();
    out_ += std::to_string(v);
  }
  void value(int v) {
    item();
    out_ += std::to_string(v);
  }
  void value(double v) {
    item();
    out_ += python_float(v);
  }
  void value(bool v) {
    item();
    out_ += v ? "true" : "false";
  }
  void null() {
    item();
    out_ += "null";
  }
  void raw(std::string_view text) { // a number already formatted
    item();
    out_ += text;
  }

  std::string& str() { return out_; }

private:
  void item() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!counts_.empty()) {
      if (counts_.back()++ > 0) out_ += indent_ < 0 ? ", " : ",";
      newline();
    }
  }
  void open(char c) {
    item();
    out_ += c;
    counts_.push_back(0);
  }
  void close(char c) {
    const bool had_items = counts_.back() > 0;
    counts_.pop_back();
    if (had_items) newline();
    out_ += c;
  }
  void newline() {
    if (indent_ < 0) return;
    out_ += '\n';
    out_.append(counts_.size() * static_cast<std::size_t>(indent_), ' ');
  }

  int indent_;
  bool after_key_ = false;
  std::vector<int> counts_;
  std::string out_;
};

} // namespace stichotrope::detail::json
