// peakfinder8: the prepared finder; frames in, flat peak arrays out. The GIL is released
// while peaks are found; the frames are read in place (no copy).
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "lclstream/error.hpp"
#include "lclstream/peakfinder8.hpp"

namespace lclstream::py_bind {
namespace {

// The element type of frames ending in the finder's (rows, cols); ValueError otherwise.
peaks::PeakInput frame_input(const peaks::Peakfinder8& f, const py::array& frames) {
  require_contiguous(frames, "peakfinder8: frames");
  const DType t = dtype_of(frames);
  peaks::PeakInput in;
  if (t == DType::f32) {
    in = peaks::PeakInput::f32;
  } else if (t == DType::u16) {
    in = peaks::PeakInput::u16;
  } else if (t == DType::u32) {
    in = peaks::PeakInput::u32;
  } else {
    throw ValueError("peakfinder8: frames must be float32, uint16 or uint32, got " + std::string(dtype_name(t)));
  }
  const auto nd = frames.ndim();
  if (nd < 2 || static_cast<std::size_t>(frames.shape(nd - 2)) != f.rows() ||
      static_cast<std::size_t>(frames.shape(nd - 1)) != f.cols())
    throw ValueError("peakfinder8: frames must end in (" + std::to_string(f.rows()) + ", " + std::to_string(f.cols()) +
                     ")");
  return in;
}

}  // namespace
}  // namespace lclstream::py_bind

using namespace lclstream;
using namespace lclstream::py_bind;

LCLSTREAM_BINDING(peaks) {
  py::class_<peaks::Peakfinder8, std::shared_ptr<peaks::Peakfinder8>>(
      m, "Peakfinder8", "psana's peakfinder8 on a prepared geometry (radius map, mask, ASIC layout).")
      .def(py::init([](py::array_t<float, py::array::c_style | py::array::forcecast> radius, py::object mask,
                       int asic_nx, int asic_ny, int nasics_x, int nasics_y, float adc_threshold, float minimum_snr,
                       int min_pixel_count, int max_pixel_count, int local_bg_radius, int max_num_peaks,
                       float min_res, float max_res) {
             if (radius.ndim() != 2) throw ValueError("peakfinder8: radius map must be 2-D (rows, cols)");
             peaks::Peakfinder8Params p;
             p.asic_nx = asic_nx;
             p.asic_ny = asic_ny;
             p.nasics_x = nasics_x;
             p.nasics_y = nasics_y;
             p.adc_threshold = adc_threshold;
             p.minimum_snr = minimum_snr;
             p.min_pixel_count = min_pixel_count;
             p.max_pixel_count = max_pixel_count;
             p.local_bg_radius = local_bg_radius;
             p.max_num_peaks = max_num_peaks;
             p.min_res = min_res;
             p.max_res = max_res;
             const auto rows = static_cast<std::size_t>(radius.shape(0));
             const auto cols = static_cast<std::size_t>(radius.shape(1));
             std::span<const float> r(radius.data(), static_cast<std::size_t>(radius.size()));
             py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast> mk;
             std::span<const std::uint8_t> ms;
             if (!mask.is_none()) {
               mk = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>::ensure(mask);
               if (!mk) throw ValueError("peakfinder8: mask must be an array of 0 (bad) / nonzero (good)");
               if (mk.ndim() != 2 || static_cast<std::size_t>(mk.shape(0)) != rows ||
                   static_cast<std::size_t>(mk.shape(1)) != cols)
                 throw ValueError("peakfinder8: mask shape differs from the radius map's");
               ms = std::span<const std::uint8_t>(mk.data(), static_cast<std::size_t>(mk.size()));
             }
             py::gil_scoped_release nogil;
             return std::make_shared<peaks::Peakfinder8>(p, rows, cols, r, ms);
           }),
           py::arg("radius"), py::arg("mask") = py::none(), py::kw_only(), py::arg("asic_nx"), py::arg("asic_ny"),
           py::arg("nasics_x"), py::arg("nasics_y"), py::arg("adc_threshold"), py::arg("minimum_snr"),
           py::arg("min_pixel_count"), py::arg("max_pixel_count"), py::arg("local_bg_radius"),
           py::arg("max_num_peaks"), py::arg("min_res") = 0.0f, py::arg("max_res") = 1e30f)
      .def_property_readonly("shape", [](const peaks::Peakfinder8& f) { return py::make_tuple(f.rows(), f.cols()); })
      .def(
          "find",
          [](const peaks::Peakfinder8& f, const py::array& frames, int threads) {
            const peaks::PeakInput in = frame_input(f, frames);
            const std::size_t n = static_cast<std::size_t>(frames.size()) / (f.rows() * f.cols());
            peaks::PeakList out;
            {
              py::gil_scoped_release nogil;
              f.find(frames.data(), in, n, out, threads);
            }
            return py::make_tuple(to_numpy(out.offsets), to_numpy(out.x), to_numpy(out.y),
                                  to_numpy(out.total_intensity), to_numpy(out.max_intensity), to_numpy(out.sigma),
                                  to_numpy(out.snr), to_numpy(out.npix), to_numpy(out.index));
          },
          py::arg("frames"), py::arg("threads") = 0,
          "Peaks of a frame or a stack of frames: (offsets, x, y, total_intensity, max_intensity, sigma, snr,"
          " npix, index), event e owning [offsets[e], offsets[e + 1]).")
      .def(
          "ring_stats",
          [](const peaks::Peakfinder8& f, const py::array& frame) {
            const peaks::PeakInput in = frame_input(f, frame);
            if (static_cast<std::size_t>(frame.size()) != f.rows() * f.cols())
              throw ValueError("peakfinder8: ring_stats takes one frame");
            py::array_t<float> off(static_cast<py::ssize_t>(f.rings())), thr(static_cast<py::ssize_t>(f.rings()));
            std::span<float> o(off.mutable_data(), f.rings()), t(thr.mutable_data(), f.rings());
            {
              py::gil_scoped_release nogil;
              f.ring_stats(frame.data(), in, o, t);
            }
            return py::make_tuple(off, thr);
          },
          py::arg("frame"), "(offset, threshold) per radial bin after psana's sigma clipping of one frame.");
}
