// plait_types.h -- the arbitrary-width integer and stream layer of plait's HLS library.
//
// Under Vitis HLS (__SYNTHESIS__, or PLAIT_USE_AP_TYPES for a vendor C simulation):
//     plait::sint<W>   = ap_int<W>
//     plait::uint<W>   = ap_uint<W>
//     plait::stream<T> = hls::stream<T>
// Otherwise (plain g++, the C simulation of `plait hls csim`) a small portable
// implementation with the semantics the library relies on:
//   * the value is held in an int64_t, always in range: construction and assignment
//     WRAP to W bits (two's complement for sint, modulo 2^W for uint), as a register /
//     ap_int assignment does;
//   * reading a value converts implicitly to int64_t, so arithmetic on these types
//     happens in 64-bit integers (every intermediate of the engines fits 63 bits) and
//     its result wraps only when stored back into a W-bit type;
//   * bit access x[i] (read only) and x.range(hi, lo) (as an unsigned value), the two
//     ap_int accessors the library uses.
// C++14 (Vitis HLS' default dialect) and later.
// sint<W> supports 1 <= W <= 64, uint<W> 1 <= W <= 63 (so that unsigned values convert
// to int64_t exactly and mixed signed/unsigned arithmetic stays signed).
//
// plait::stream<T> (portable) is an unbounded FIFO with the hls::stream member
// functions the library uses (read, write, read_nb, empty, full, size, <<, >>); reading
// an empty stream throws std::runtime_error (in hardware it would block forever).
#ifndef PLAIT_TYPES_H
#define PLAIT_TYPES_H

#include <cstdint>

#if defined(__SYNTHESIS__) || defined(PLAIT_USE_AP_TYPES)
#include <ap_int.h>
#include <hls_stream.h>
#define PLAIT_AP_TYPES 1

namespace plait {
template <int W> using sint = ap_int<W>;
template <int W> using uint = ap_uint<W>;
template <class T> using stream = hls::stream<T>;
}  // namespace plait

#else  // portable implementation
#include <cstddef>
#include <deque>
#include <stdexcept>
#include <string>

namespace plait {
namespace detail {

template <int W>
constexpr int64_t wrap_signed(int64_t v) {
  static_assert(W >= 1 && W <= 64, "plait::sint<W>: 1 <= W <= 64");
  // shift the value's top bit into bit 63, then back (arithmetic shift: g++ defines it)
  return W == 64 ? v
                 : static_cast<int64_t>(static_cast<uint64_t>(v) << ((64 - W) & 63)) >>
                       ((64 - W) & 63);
}

template <int W>
constexpr int64_t wrap_unsigned(int64_t v) {
  static_assert(W >= 1 && W <= 63, "plait::uint<W>: 1 <= W <= 63");
  return static_cast<int64_t>(static_cast<uint64_t>(v) & ((uint64_t(1) << W) - 1));
}

}  // namespace detail

template <int W> class uint;

/// W-bit two's-complement integer; assignment wraps (like ap_int<W>).
template <int W>
class sint {
 public:
  constexpr sint() : v_(0) {}
  constexpr sint(int64_t v) : v_(detail::wrap_signed<W>(v)) {}   // NOLINT: implicit like ap_int
  constexpr sint(int v) : v_(detail::wrap_signed<W>(v)) {}       // NOLINT
  constexpr sint(unsigned v) : v_(detail::wrap_signed<W>(v)) {}  // NOLINT
  constexpr sint(long long v) : v_(detail::wrap_signed<W>(static_cast<int64_t>(v))) {}  // NOLINT
  constexpr sint(uint64_t v) : v_(detail::wrap_signed<W>(static_cast<int64_t>(v))) {}   // NOLINT
  constexpr sint(bool v) : v_(detail::wrap_signed<W>(v ? 1 : 0)) {}  // NOLINT
  template <int W2> constexpr sint(const sint<W2>& o) : v_(detail::wrap_signed<W>(int64_t(o))) {}
  template <int W2> constexpr sint(const uint<W2>& o) : v_(detail::wrap_signed<W>(int64_t(o))) {}

  constexpr operator int64_t() const { return v_; }  // NOLINT: implicit like ap_int

  constexpr bool operator[](int i) const { return (static_cast<uint64_t>(v_) >> i) & 1; }
  /// bits hi..lo as an unsigned value (hi - lo < 63)
  constexpr int64_t range(int hi, int lo) const {
    return static_cast<int64_t>((static_cast<uint64_t>(v_) >> lo) &
                                ((uint64_t(1) << (hi - lo + 1)) - 1));
  }
  constexpr int64_t to_int64() const { return v_; }

  constexpr sint& operator+=(int64_t o) { v_ = detail::wrap_signed<W>(v_ + o); return *this; }
  constexpr sint& operator-=(int64_t o) { v_ = detail::wrap_signed<W>(v_ - o); return *this; }
  constexpr sint& operator*=(int64_t o) { v_ = detail::wrap_signed<W>(v_ * o); return *this; }
  constexpr sint& operator<<=(int s) {
    v_ = detail::wrap_signed<W>(static_cast<int64_t>(static_cast<uint64_t>(v_) << s));
    return *this;
  }
  constexpr sint& operator>>=(int s) { v_ = v_ >> s; return *this; }

 private:
  int64_t v_;
};

/// W-bit unsigned integer; assignment wraps modulo 2^W (like ap_uint<W>).
template <int W>
class uint {
 public:
  constexpr uint() : v_(0) {}
  constexpr uint(int64_t v) : v_(detail::wrap_unsigned<W>(v)) {}   // NOLINT
  constexpr uint(int v) : v_(detail::wrap_unsigned<W>(v)) {}       // NOLINT
  constexpr uint(unsigned v) : v_(detail::wrap_unsigned<W>(v)) {}  // NOLINT
  constexpr uint(long long v) : v_(detail::wrap_unsigned<W>(static_cast<int64_t>(v))) {}  // NOLINT
  constexpr uint(uint64_t v) : v_(detail::wrap_unsigned<W>(static_cast<int64_t>(v))) {}   // NOLINT
  constexpr uint(bool v) : v_(v ? 1 : 0) {}  // NOLINT
  template <int W2> constexpr uint(const sint<W2>& o) : v_(detail::wrap_unsigned<W>(int64_t(o))) {}
  template <int W2> constexpr uint(const uint<W2>& o) : v_(detail::wrap_unsigned<W>(int64_t(o))) {}

  constexpr operator int64_t() const { return v_; }  // NOLINT

  constexpr bool operator[](int i) const { return (static_cast<uint64_t>(v_) >> i) & 1; }
  constexpr int64_t range(int hi, int lo) const {
    return static_cast<int64_t>((static_cast<uint64_t>(v_) >> lo) &
                                ((uint64_t(1) << (hi - lo + 1)) - 1));
  }
  constexpr int64_t to_int64() const { return v_; }
  constexpr uint64_t to_uint64() const { return static_cast<uint64_t>(v_); }

  constexpr uint& operator+=(int64_t o) { v_ = detail::wrap_unsigned<W>(v_ + o); return *this; }
  constexpr uint& operator-=(int64_t o) { v_ = detail::wrap_unsigned<W>(v_ - o); return *this; }
  constexpr uint& operator<<=(int s) {
    v_ = detail::wrap_unsigned<W>(static_cast<int64_t>(static_cast<uint64_t>(v_) << s));
    return *this;
  }
  constexpr uint& operator>>=(int s) { v_ = v_ >> s; return *this; }

 private:
  int64_t v_;
};

/// Unbounded FIFO with the hls::stream interface the library uses.
template <class T>
class stream {
 public:
  stream() = default;
  explicit stream(const char* name) : name_(name) {}
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  void write(const T& v) { q_.push_back(v); }
  bool write_nb(const T& v) { q_.push_back(v); return true; }
  T read() {
    if (q_.empty())
      throw std::runtime_error("plait::stream '" + name_ + "': read from an empty stream "
                               "(the hardware would deadlock here)");
    T v = q_.front();
    q_.pop_front();
    return v;
  }
  bool read_nb(T& v) {
    if (q_.empty()) return false;
    v = read();
    return true;
  }
  void operator>>(T& v) { v = read(); }
  void operator<<(const T& v) { write(v); }
  bool empty() const { return q_.empty(); }
  bool full() const { return false; }
  std::size_t size() const { return q_.size(); }

 private:
  std::deque<T> q_;
  std::string name_ = "stream";
};

}  // namespace plait
#endif  // portable implementation

namespace plait {
/// The value of an integer (native or plait::sint/uint) as int64_t.
template <class T>
inline int64_t as_i64(const T& v) { return static_cast<int64_t>(v); }
}  // namespace plait

#endif  // PLAIT_TYPES_H
