#pragma once
// Convenience header: everything a DAQ program needs.
#include "lclstream/batch.hpp"
#include "lclstream/buffer_pool.hpp"
#include "lclstream/codec.hpp"
#include "lclstream/dtype.hpp"
#include "lclstream/error.hpp"
#include "lclstream/isa.hpp"
#include "lclstream/parallel.hpp"
#include "lclstream/sparse.hpp"
#include "lclstream/transport.hpp"
#include "lclstream/version.hpp"
