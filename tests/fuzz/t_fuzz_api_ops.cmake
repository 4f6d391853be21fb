# t_fuzz_api_ops.cmake: fuzz_api's ops come from vdi_api.def, so a call added to the list
# that fuzz_api has no op for (nor names as none) does not build, and cannot go undriven.
# Compiles fuzz/fuzz_api.c (syntax only) against a copy of the .def and of chaos_model.h
# (which includes it) in WORK:
#   cmake -DCC=cc -DSRC_DIR=<source dir> -DWORK=<dir> [-DEXTRA=<.def line> -DEXPECT=<name>]
#         -P t_fuzz_api_ops.cmake
# Without EXTRA it must build; with EXTRA (the test's teeth) it must not, and the compiler
# must name EXPECT, the op or the exclusion that is missing.
cmake_minimum_required(VERSION 3.20)
set(model ${SRC_DIR}/chaos/model/include)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
file(COPY ${model}/chaos_model.h DESTINATION ${WORK})
file(READ ${model}/vdi_api.def def)
if(DEFINED EXTRA)
  string(FIND "${def}" "#undef VDI_CALL" at)
  if(at LESS 0)
    message(FATAL_ERROR "vdi_api.def no longer ends with #undef VDI_CALL: where does EXTRA go?")
  endif()
  string(REPLACE "#undef VDI_CALL" "${EXTRA}\n#undef VDI_CALL" def "${def}")
endif()
file(WRITE ${WORK}/vdi_api.def "${def}")

execute_process(
  COMMAND ${CC} -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Werror -fsyntax-only
          -I${WORK} -I${SRC_DIR}/fuzz -I${model} -I${SRC_DIR}/ref/include
          -I${SRC_DIR}/chaos/include
          ${SRC_DIR}/fuzz/fuzz_api.c
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT DEFINED EXTRA)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "fuzz_api.c does not build against vdi_api.def:\n${out}")
  endif()
  message(STATUS "fuzz_api.c builds against vdi_api.def")
  return()
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "fuzz_api.c builds with an entry it has no op for (${EXTRA}): "
                      "its ops no longer come from vdi_api.def")
endif()
string(FIND "${out}" "${EXPECT}" named)
if(named LESS 0)
  message(FATAL_ERROR "fuzz_api.c fails to build with ${EXTRA}, but not for want of ${EXPECT}:\n"
                      "${out}")
endif()
message(STATUS "fuzz_api.c does not build without ${EXPECT}")
