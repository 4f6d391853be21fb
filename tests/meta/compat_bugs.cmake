# Teeth for fuzz_compat: seeded bugs in libsqlvdi (ref/compat/src/sqlvdi.cpp). Each is a
# textual change applied at configure time to a scratch copy of sqlvdi.cpp (never an #ifdef
# in ref/compat), built into fuzz_compat_replay_<bug> (and, in the fuzz preset, a libFuzzer
# fuzz_compat_<bug>, to measure how fast the fuzzer finds it). meta_compat_<bug> replays the
# input stored for it, corpora/fuzz_compat/meta/<bug>, and passes only when the replay fails
# with the bug's oracle (a model mismatch of the target, or an ASan report);
# meta_compat_clean replays every such input against the clean library: no finding. A
# change whose text is gone fails the configure step.
if(NOT TARGET fuzz_compat_replay OR NOT TARGET fuzz_compat_sqlvdi)
  return()
endif()

set(COMPAT_SOURCE ${PROJECT_SOURCE_DIR}/ref/compat/src/sqlvdi.cpp)
set(COMPAT_INPUTS ${PROJECT_SOURCE_DIR}/corpora/fuzz_compat/meta)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${COMPAT_SOURCE})

# compat_bug(NAME name FROM text TO text ORACLE regex [SANITIZER asan]): FROM (write ";" as
# "@S@") becomes TO in the copy; the replay's output must match ORACLE. SANITIZER asan: the
# oracle is an ASan report, so the test exists only in ASan builds.
function(compat_bug)
  cmake_parse_arguments(B "" "NAME;FROM;TO;ORACLE;SANITIZER" "" ${ARGN})
  if(B_SANITIZER AND NOT VDI_SANITIZE STREQUAL B_SANITIZER)
    return()
  endif()
  file(READ ${COMPAT_SOURCE} text)
  string(REPLACE "@S@" ";" from "${B_FROM}")
  string(REPLACE "@S@" ";" to "${B_TO}")
  string(FIND "${text}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "compat bug ${B_NAME}: the text to change is gone from sqlvdi.cpp")
  endif()
  string(REPLACE "${from}" "${to}" text "${text}")
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/compat_bug_${B_NAME})
  set(old "")
  if(EXISTS ${dir}/sqlvdi.cpp)
    file(READ ${dir}/sqlvdi.cpp old)
  endif()
  if(NOT old STREQUAL text) # written only when it changed: no rebuild on every configure
    file(WRITE ${dir}/sqlvdi.cpp "${text}")
  endif()
  add_library(compat_sqlvdi_${B_NAME} STATIC ${dir}/sqlvdi.cpp
                                             ${PROJECT_SOURCE_DIR}/ref/compat/src/sqlvdi_audit.cpp)
  target_include_directories(compat_sqlvdi_${B_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/ref/compat/include
                                                            ${PROJECT_SOURCE_DIR}/ref/compat/src)
  target_link_libraries(compat_sqlvdi_${B_NAME} PUBLIC vdiref Threads::Threads)
  set(fz ${PROJECT_SOURCE_DIR}/fuzz)
  add_executable(fuzz_compat_replay_${B_NAME} ${fz}/fuzz_compat.cpp ${fz}/replay_driver.c)
  target_include_directories(fuzz_compat_replay_${B_NAME} PRIVATE ${fz})
  target_link_libraries(fuzz_compat_replay_${B_NAME} PRIVATE compat_sqlvdi_${B_NAME} chaos_model
                                                             vdiref Threads::Threads)
  if(VDI_FUZZ)
    add_executable(fuzz_compat_${B_NAME} ${fz}/fuzz_compat.cpp)
    target_include_directories(fuzz_compat_${B_NAME} PRIVATE ${fz})
    target_compile_options(fuzz_compat_${B_NAME} PRIVATE -fsanitize=fuzzer-no-link)
    target_link_options(fuzz_compat_${B_NAME} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_compat_${B_NAME} PRIVATE compat_sqlvdi_${B_NAME} chaos_model vdiref
                                                        Threads::Threads)
  endif()
  # Through sh: an abort() is an exit status there, and ctest judges the output alone.
  add_test(NAME meta_compat_${B_NAME}
           COMMAND sh -c "\"$0\" \"$1\" 2>&1; echo \"exit status $?\""
                   $<TARGET_FILE:fuzz_compat_replay_${B_NAME}> ${COMPAT_INPUTS}/${B_NAME})
  set_tests_properties(meta_compat_${B_NAME} PROPERTIES LABELS meta TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "${B_ORACLE}")
endfunction()

# Timeout 0 (poll) handed to the reference as INFINITE: a GetConfiguration(0) before the
# server ended the configuration waits past its timeout.
compat_bug(NAME zero_timeout_waits_forever
  FROM "return t < 0 ? VDI_INFINITE : static_cast<long>(t)@S@"
  TO "return t <= 0 ? VDI_INFINITE : static_cast<long>(t)@S@"
  ORACLE "==fuzz_compat== mismatch at op [0-9]+ \\(GetConfiguration\\): the call waits past 0 ms")

# A time_t timeout cut to 32 bits: 2^32 + 1 ms becomes 1 ms, the wait times out at once.
compat_bug(NAME timeout_cut_to_int
  FROM "return t < 0 ? VDI_INFINITE : static_cast<long>(t)@S@"
  TO "return t < 0 ? VDI_INFINITE : static_cast<long>(static_cast<int>(t))@S@"
  ORACLE "==fuzz_compat== mismatch at op [0-9]+ \\(GetConfiguration\\): returned VD_E_TIMEOUT after 1 ms")

# A Close that answers VD_E_OPEN closed the set all the same, but its device objects stay
# attached: once the set object is deleted, a call on one touches the freed set.
compat_bug(NAME close_open_keeps_devices SANITIZER asan
  FROM "if (rc != VD_E_PROTOCOL) /* it closed: NOERROR or VD_E_OPEN */"
  TO "if (rc == NOERROR) /* seeded bug: VD_E_OPEN taken for a failed Close */"
  ORACLE "AddressSanitizer: heap-use-after-free")

# Close orphans its device objects but leaves them their C handles: once the set is made
# again and the device opened anew, the old object reaches the new session's device.
compat_bug(NAME orphan_keeps_handle
  FROM "        d->owner = nullptr@S@
        d->dev = nullptr@S@
        push(&orphans, d)@S@"
  TO "        push(&orphans, d)@S@"
  ORACLE "==fuzz_compat== mismatch at op [0-9]+ \\(GetCommand\\): expected VD_E_PROTOCOL, got")

# The clean library replays every stored input clean.
file(GLOB compat_meta_inputs ${COMPAT_INPUTS}/*)
list(FILTER compat_meta_inputs EXCLUDE REGEX "README.md$")
if(compat_meta_inputs)
  add_test(NAME meta_compat_clean COMMAND fuzz_compat_replay ${compat_meta_inputs})
  set_tests_properties(meta_compat_clean PROPERTIES LABELS meta TIMEOUT 60)
endif()
