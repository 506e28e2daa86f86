// tb_common.h -- golden-vector reader and integer comparison of the C-simulation
// testbenches (tb_*.cpp).  Not synthesized.
//
// Vector file (written by plait.hls.csim.write_vectors), whitespace separated:
//     plait-vectors 1
//     case <name>
//     int <key> <value>                      (any number, any order)
//     arr <key> <count> <v0> <v1> ...        (integers)
//     end
//     ...                                    (more cases)
// Every comparison prints one line on a mismatch and stops at the first one:
//     MISMATCH case=<name> array=<key> index=<i> got=<g> expected=<e>
// (index=-1: the lengths differ; got/expected are then the lengths), and per case
//     CASE <name> ok|FAIL
// and at the end  SUMMARY cases=<n> failed=<f>.  Exit status 0 iff nothing failed.
#ifndef PLAIT_TB_COMMON_H
#define PLAIT_TB_COMMON_H

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace plait {
namespace tb {

struct Case {
  std::string name;
  std::map<std::string, int64_t> ints;
  std::map<std::string, std::vector<int64_t>> arrs;

  int64_t i(const std::string& key) const {
    auto it = ints.find(key);
    if (it == ints.end()) throw std::runtime_error("case " + name + ": no int '" + key + "'");
    return it->second;
  }
  int64_t i(const std::string& key, int64_t dflt) const {
    auto it = ints.find(key);
    return it == ints.end() ? dflt : it->second;
  }
  bool has(const std::string& key) const { return arrs.count(key) > 0; }
  const std::vector<int64_t>& a(const std::string& key) const {
    auto it = arrs.find(key);
    if (it == arrs.end()) throw std::runtime_error("case " + name + ": no array '" + key + "'");
    return it->second;
  }
  template <class T>
  std::vector<T> as(const std::string& key) const {
    const auto& v = a(key);
    return std::vector<T>(v.begin(), v.end());
  }
};

inline std::vector<Case> read_cases(const char* path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(std::string("cannot open vector file ") + path);
  std::string tok;
  int version = 0;
  if (!(in >> tok >> version) || tok != "plait-vectors" || version != 1)
    throw std::runtime_error(std::string(path) + ": not a plait-vectors 1 file");
  std::vector<Case> cases;
  while (in >> tok) {
    if (tok != "case") throw std::runtime_error("vector file: expected 'case', got '" + tok + "'");
    Case c;
    in >> c.name;
    while (in >> tok && tok != "end") {
      std::string key;
      in >> key;
      if (tok == "int") {
        int64_t v;
        in >> v;
        c.ints[key] = v;
      } else if (tok == "arr") {
        long long n;
        in >> n;
        std::vector<int64_t> v(static_cast<size_t>(n));
        for (auto& e : v) in >> e;
        c.arrs[key] = std::move(v);
      } else {
        throw std::runtime_error("vector file: unknown record '" + tok + "'");
      }
      if (!in) throw std::runtime_error("vector file: truncated in case " + c.name);
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

/// Compare integers; print the first mismatch.  Returns true iff equal.
inline bool check(const Case& c, const char* what, const std::vector<int64_t>& got,
                  const std::vector<int64_t>& expected) {
  if (got.size() != expected.size()) {
    std::printf("MISMATCH case=%s array=%s index=-1 got=%zu expected=%zu\n", c.name.c_str(),
                what, got.size(), expected.size());
    return false;
  }
  for (size_t j = 0; j < got.size(); ++j) {
    if (got[j] != expected[j]) {
      std::printf("MISMATCH case=%s array=%s index=%zu got=%lld expected=%lld\n",
                  c.name.c_str(), what, j, static_cast<long long>(got[j]),
                  static_cast<long long>(expected[j]));
      return false;
    }
  }
  return true;
}

inline bool check(const Case& c, const char* what, int64_t got, int64_t expected) {
  return check(c, what, std::vector<int64_t>{got}, std::vector<int64_t>{expected});
}

/// Run `body(case) -> bool` on every case of argv[1]; prints CASE / SUMMARY lines.
template <class F>
int run_all(int argc, char** argv, F body) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s VECTORS\n", argv[0]);
    return 2;
  }
  try {
    const std::vector<Case> cases = read_cases(argv[1]);
    int failed = 0;
    for (const Case& c : cases) {
      bool ok = false;
      try {
        ok = body(c);
      } catch (const std::exception& e) {
        std::printf("ERROR case=%s %s\n", c.name.c_str(), e.what());
      }
      std::printf("CASE %s %s\n", c.name.c_str(), ok ? "ok" : "FAIL");
      failed += ok ? 0 : 1;
    }
    std::printf("SUMMARY cases=%zu failed=%d\n", cases.size(), failed);
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    std::printf("ERROR %s\n", e.what());
    return 2;
  }
}

}  // namespace tb
}  // namespace plait

#endif  // PLAIT_TB_COMMON_H
