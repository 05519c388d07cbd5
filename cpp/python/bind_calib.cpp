// Calibration kernels: numpy in, numpy out, no copies, GIL released around the kernels.
// Shape handling and friendly messages live in python/lclstream/calib.py; these checks
// only guarantee the kernels never read or write out of bounds.
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "lclstream/calib.hpp"
#include "lclstream/error.hpp"

namespace lclstream::py_bind {
namespace {

template <class T>
constexpr DType dtype_for() {
  if constexpr (std::is_same_v<T, float>) return DType::f32;
  if constexpr (std::is_same_v<T, std::uint16_t>) return DType::u16;
  if constexpr (std::is_same_v<T, std::int16_t>) return DType::i16;
  if constexpr (std::is_same_v<T, std::uint32_t>) return DType::u32;
  return DType::u8;
}

template <class T>
std::span<const T> in_span(const std::optional<py::array>& a, const char* what) {
  if (!a) return {};
  require_contiguous(*a, what);
  if (dtype_of(*a) != dtype_for<T>()) {
    throw ValueError(std::string(what) + " must be " + std::string(dtype_name(dtype_for<T>())) + ", got " +
                     std::string(dtype_name(dtype_of(*a))));
  }
  return {static_cast<const T*>(a->data()), static_cast<std::size_t>(a->size())};
}

template <class T>
std::span<T> out_span(const py::array& a) {
  if (!a.writeable()) throw ValueError("calibration: out is read-only");
  return {static_cast<T*>(const_cast<void*>(a.data())), static_cast<std::size_t>(a.size())};
}

calib::Output output_from(const std::string& s) {
  if (s == "keV" || s == "kev") return calib::Output::kev;
  if (s == "adu" || s == "ADU") return calib::Output::adu;
  if (s == "photons") return calib::Output::photons;
  throw ValueError("calibration: output must be 'keV', 'adu' or 'photons', got '" + s + "'");
}

/// `fn(span of out)` for a float32, uint16 or uint32 `out`, without the GIL: the invalid-gain
/// pixel count it returns.
template <class Fn>
py::int_ with_out(const py::array& out, Fn&& fn) {
  require_contiguous(out, "calibration: out");
  const DType ot = dtype_of(out);
  std::uint64_t invalid = 0;
  auto run = [&](auto o) {
    py::gil_scoped_release nogil;
    invalid = fn(o);
  };
  if (ot == DType::f32) {
    run(out_span<float>(out));
  } else if (ot == DType::u16) {
    run(out_span<std::uint16_t>(out));
  } else if (ot == DType::u32) {
    run(out_span<std::uint32_t>(out));
  } else {
    throw ValueError("calibration: out must be float32, uint16 or uint32, got " + std::string(dtype_name(ot)));
  }
  return py::int_(invalid);
}

template <class In>
py::int_ apply_in(const calib::Calibrator& c, std::span<const In> raw, const py::array& out, int threads) {
  return with_out(out, [&](auto o) -> std::uint64_t {
    if constexpr (std::is_same_v<In, std::uint16_t>) {
      return c.apply(raw, o, threads);
    } else {
      c.apply(raw, o, threads);
      return 0;
    }
  });
}

}  // namespace
}  // namespace lclstream::py_bind

using namespace lclstream;
using namespace lclstream::py_bind;
using OptArray = std::optional<py::array>;

LCLSTREAM_BINDING(calib) {
  py::class_<calib::Calibrator, std::shared_ptr<calib::Calibrator>>(m, "Calibrator",
      "Prepared per-run calibration constants (planar float32 tables) and their kernels.")
      .def_static("jungfrau", [](const py::array& ped, const py::array& gain, const OptArray& offset,
                                 const OptArray& mask, std::size_t frame_pixels, const std::string& output,
                                 float energy) {
             auto p = in_span<float>(ped, "Jungfrau pedestal");
             auto g = in_span<float>(gain, "Jungfrau gain");
             auto o = in_span<float>(offset, "Jungfrau offset");
             auto mk = in_span<std::uint8_t>(mask, "Jungfrau mask");
             const auto out = output_from(output);
             py::gil_scoped_release nogil;
             return std::make_shared<calib::Calibrator>(
                 calib::Calibrator::jungfrau(p, g, o, mk, frame_pixels, out, energy));
           }, py::arg("pedestal"), py::arg("gain"), py::arg("offset"), py::arg("mask"),
           py::arg("frame_pixels"), py::arg("output"), py::arg("photon_energy_keV") = 0.0F)
      .def_static("epix10ka", [](const py::array& ped, const py::array& gain, const py::array& cbits,
                                 const OptArray& mask, std::size_t frame_pixels, const std::string& output,
                                 float energy) {
             auto p = in_span<float>(ped, "ePix10ka pedestal");
             auto g = in_span<float>(gain, "ePix10ka gain");
             auto cb = in_span<std::uint8_t>(cbits, "ePix10ka config_bits");
             auto mk = in_span<std::uint8_t>(mask, "ePix10ka mask");
             const auto out = output_from(output);
             py::gil_scoped_release nogil;
             return std::make_shared<calib::Calibrator>(
                 calib::Calibrator::epix10ka(p, g, cb, mk, frame_pixels, out, energy));
           }, py::arg("pedestal"), py::arg("gain"), py::arg("config_bits"), py::arg("mask"),
           py::arg("frame_pixels"), py::arg("output"), py::arg("photon_energy_keV") = 0.0F)
      .def_static("generic", [](const OptArray& ped, const OptArray& gain, const OptArray& mask,
                                std::size_t frame_pixels, const std::string& output, float energy) {
             auto p = in_span<float>(ped, "pedestal");
             auto g = in_span<float>(gain, "gain");
             auto mk = in_span<std::uint8_t>(mask, "mask");
             const auto out = output_from(output);
             py::gil_scoped_release nogil;
             return std::make_shared<calib::Calibrator>(
                 calib::Calibrator::generic(p, g, mk, frame_pixels, out, energy));
           }, py::arg("pedestal"), py::arg("gain"), py::arg("mask"), py::arg("frame_pixels"),
           py::arg("output"), py::arg("photon_energy_keV") = 0.0F)
      .def("apply", [](const calib::Calibrator& c, const py::array& raw, const py::array& out, int threads) {
             require_contiguous(raw, "calibration: raw");
             const DType rt = dtype_of(raw);
             if (rt == DType::u16) return apply_in(c, in_span<std::uint16_t>(raw, "raw"), out, threads);
             if (rt == DType::i16) return apply_in(c, in_span<std::int16_t>(raw, "raw"), out, threads);
             if (rt == DType::f32) return apply_in(c, in_span<float>(raw, "raw"), out, threads);
             throw ValueError("calibration: raw must be uint16 (or int16/float32 for Generic), got " +
                              std::string(dtype_name(rt)));
           }, py::arg("raw"), py::arg("out"), py::arg("threads") = 0,
           "Calibrates raw into out (same number of pixels); returns the invalid-gain pixel count.")
      .def("apply_frames", [](const calib::Calibrator& c, const py::list& raws, const py::array& out, int threads) {
             // the raw arrays are held (and checked) here; the kernels run without the GIL
             std::vector<py::array> held;
             std::vector<std::span<const std::uint16_t>> spans;
             held.reserve(raws.size());
             for (const auto& r : raws) {
               auto a = py::cast<py::array>(r);
               require_contiguous(a, "calibration: raw");
               if (dtype_of(a) != DType::u16) throw ValueError("calibration: apply_frames needs uint16 raw frames");
               spans.push_back(in_span<std::uint16_t>(a, "raw"));
               held.push_back(std::move(a));
             }
             return with_out(out, [&](auto o) { return c.apply_frames(spans, o, threads); });
           }, py::arg("raws"), py::arg("out"), py::arg("threads") = 0,
           "Calibrates a list of raw frames into one stack (constants read once per call).")
      .def("set_common_mode", [](calib::Calibrator& c, const std::string& method, std::size_t module_rows,
                                 std::size_t module_cols, std::size_t bank_rows, std::size_t bank_cols,
                                 float threshold, float cormax, std::size_t min_pixels) {
             calib::CommonMode cm;
             if (method == "median") {
               cm.method = calib::CommonMode::Method::median;
             } else if (method == "mean") {
               cm.method = calib::CommonMode::Method::mean;
             } else {
               throw ValueError("common mode: method must be 'median' or 'mean', got '" + method + "'");
             }
             cm.module_rows = module_rows;
             cm.module_cols = module_cols;
             cm.bank_rows = bank_rows;
             cm.bank_cols = bank_cols;
             cm.threshold = threshold;
             cm.cormax = cormax;
             cm.min_pixels = min_pixels;
             c.set_common_mode(cm);
           }, py::arg("method"), py::arg("module_rows"), py::arg("module_cols"), py::arg("bank_rows"),
           py::arg("bank_cols"), py::arg("threshold"), py::arg("cormax"), py::arg("min_pixels"))
      .def_property_readonly("frame_pixels", &calib::Calibrator::frame_pixels)
      .def_property_readonly("has_common_mode", &calib::Calibrator::has_common_mode)
      .def_property_readonly("photon_energy_keV", &calib::Calibrator::photon_energy);
}
