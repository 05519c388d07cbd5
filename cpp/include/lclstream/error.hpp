#pragma once
// Typed exceptions of the core. Every error says what was wrong and where; the Python
// bindings map each type onto a Python exception class of the same meaning.
#include <stdexcept>
#include <string>

namespace lclstream {

/// Base of every exception the core throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An argument has the wrong dtype, shape, size or value (Python: ValueError).
class ValueError : public Error {
 public:
  using Error::Error;
};

/// A fixed-capacity container (batch, pool, output buffer) cannot take more (Python: CapacityError).
class CapacityError : public Error {
 public:
  using Error::Error;
};

/// Input bytes (a chunk, a message, a file) are truncated or corrupt (Python: CorruptDataError).
class CorruptDataError : public Error {
 public:
  using Error::Error;
};

/// A blocking operation ran past its deadline (Python: TimeoutError subclass).
class TimeoutError : public Error {
 public:
  using Error::Error;
};

/// A wait was given up because its owner was cancelled (BufferPool::cancel; Python:
/// CancelledError), as opposed to running past a deadline.
class CancelledError : public Error {
 public:
  using Error::Error;
};

/// A socket or endpoint failed (Python: TransportError).
class TransportError : public Error {
 public:
  using Error::Error;
};

/// A blocking call was interrupted by a signal (Python: KeyboardInterrupt path).
class InterruptedError : public Error {
 public:
  using Error::Error;
};

}  // namespace lclstream
