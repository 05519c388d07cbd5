// The codec table (kCodecTable in lclstream/codec.hpp) as `_core.codecs()`: the Python layer
// derives codec names, compression aliases, HDF5 filters and stream2 names from it alone.
#include <string>

#include "bindings.hpp"
#include "lclstream/codec.hpp"

using namespace lclstream;
using namespace lclstream::py_bind;

LCLSTREAM_BINDING(codec_table) {
  py::class_<CodecInfo>(m, "CodecInfo", "One row of the C++ codec table (read-only).")
      .def_property_readonly("name", [](const CodecInfo& c) { return std::string(c.name); })
      .def_property_readonly("hdf5_filter_id", [](const CodecInfo& c) { return c.hdf5_filter_id; })
      .def_property_readonly("hdf5_block_size_option", [](const CodecInfo& c) { return c.hdf5_block_size_option; })
      .def_property_readonly("hdf5_compressor", [](const CodecInfo& c) { return c.hdf5_compressor; })
      .def_property_readonly("hdf5_compressor_slot", [](const CodecInfo& c) { return c.hdf5_compressor_slot; })
      .def_property_readonly("hdf5_options", [](const CodecInfo& c) {
        const auto opts = hdf5_filter_options(c.codec, 0);
        py::tuple t(opts.size());
        for (std::size_t i = 0; i < opts.size(); ++i) t[i] = opts[i];
        return t;
      }, "The filter's user options (cd_values) at the default level, as hdf5plugin writes them.")
      .def_property_readonly("bitshuffled", [](const CodecInfo& c) { return c.bitshuffled; })
      .def_property_readonly("size_header", [](const CodecInfo& c) { return c.size_header; })
      .def_property_readonly("default_level", [](const CodecInfo& c) { return c.default_level; })
      .def_property_readonly("stream2_name", [](const CodecInfo& c) -> py::object {
        if (c.stream2_name.empty()) return py::none();
        return py::str(std::string(c.stream2_name));
      })
      .def("__repr__", [](const CodecInfo& c) {
        return "CodecInfo('" + std::string(c.name) + "', hdf5_filter_id=" + std::to_string(c.hdf5_filter_id) + ")";
      });

  m.def("codecs", [] { return std::vector<CodecInfo>(kCodecTable.begin(), kCodecTable.end()); },
        "The codec table, one CodecInfo per codec, in the core's order.");
}
