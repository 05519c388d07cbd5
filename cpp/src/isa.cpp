#include "lclstream/isa.hpp"

#include <atomic>
#include <cstdlib>
#include <string>

#include "lclstream/error.hpp"

namespace lclstream {
namespace {

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") &&
         __builtin_cpu_supports("popcnt");
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2") &&
         __builtin_cpu_supports("avx512bitalg") && __builtin_cpu_supports("avx512vpopcntdq") &&
         __builtin_cpu_supports("gfni");
}

Isa initial_isa() {
  const auto avail = available_isas();
  if (const char* env = std::getenv("LCLSTREAM_ISA"); env != nullptr && *env != '\0') {
    Isa want = Isa::scalar;
    try {
      want = isa_from_name(env);
    } catch (const ValueError&) {
      return avail.front();  // an unknown name must not make the library unusable
    }
    for (Isa a : avail) {
      if (a == want) return want;
    }
  }
  return avail.front();
}

std::atomic<Isa>& current() {
  static std::atomic<Isa> isa{initial_isa()};
  return isa;
}

}  // namespace

std::string_view isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    case Isa::scalar: break;
  }
  return "scalar";
}

Isa isa_from_name(std::string_view name) {
  if (name == "scalar") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw ValueError("unknown ISA '" + std::string(name) + "' (allowed: scalar, avx2, avx512)");
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  if (cpu_has_avx512()) out.push_back(Isa::avx512);
  if (cpu_has_avx2()) out.push_back(Isa::avx2);
  out.push_back(Isa::scalar);
  return out;
}

Isa active_isa() noexcept { return current().load(std::memory_order_relaxed); }

void set_isa(Isa isa) {
  for (Isa a : available_isas()) {
    if (a == isa) {
      current().store(isa, std::memory_order_relaxed);
      return;
    }
  }
  throw ValueError("ISA '" + std::string(isa_name(isa)) + "' is not supported by this CPU");
}

}  // namespace lclstream
