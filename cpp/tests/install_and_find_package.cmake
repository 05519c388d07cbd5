# Installs the already-built core into WORK_DIR/prefix, then builds examples/cpp as a
# separate CMake project that only knows the prefix, and runs every program it builds.
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix
  RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/cpp -B ${WORK_DIR}/build
  -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring examples/cpp with find_package(lclstream) failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building examples/cpp failed: ${rc}")
endif()
execute_process(COMMAND ${WORK_DIR}/build/batch_example RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "examples/cpp batch_example failed: ${rc}")
endif()
