# Teeth for fuzz_peer's forging server (its mode byte 0xc0 and up): seeded bugs in the
# client's checks of the command ring (VDI-SPEC 7). Each is built with seeded_ref_library
# into fuzz_peer_replay_<bug>; meta_peer_<bug> replays the seed made for it (INPUT, one of
# corpora/fuzz_peer/seed, written by gen_seeds.py), and passes only when the replay fails with the bug's oracle
# (a message of the target, or an ASan report). meta_peer_clean replays every such input
# against the clean reference: no finding. A change whose text is gone fails the configure.
if(NOT TARGET fuzz_peer_replay)
  return()
endif()

set(PEER_SEEDS ${PROJECT_SOURCE_DIR}/corpora/fuzz_peer/seed)
set(PEER_INPUTS)

# replay_bug(TEST test NAME name TARGET target INPUT path ORACLE regex): target's replay
# driver built against meta_lib_<name> (seeded_ref_library), and the test that replays
# INPUT, one of its stored inputs, through it: it passes only when the replay fails with
# the bug's oracle (a message of the target, or an ASan report).
function(replay_bug)
  cmake_parse_arguments(B "" "TEST;NAME;TARGET;INPUT;ORACLE" "" ${ARGN})
  set(fz ${PROJECT_SOURCE_DIR}/fuzz)
  set(exe ${B_TARGET}_replay_${B_NAME})
  add_executable(${exe} ${fz}/${B_TARGET}.c ${fz}/replay_driver.c)
  target_include_directories(${exe} PRIVATE ${fz})
  target_link_libraries(${exe} PRIVATE meta_lib_${B_NAME})
  # Through sh: an abort() is an exit status there, and ctest judges the output alone.
  add_test(NAME ${B_TEST} COMMAND sh -c "\"$0\" \"$1\" 2>&1; echo \"exit status $?\""
                                  $<TARGET_FILE:${exe}> ${B_INPUT})
  set_tests_properties(${B_TEST} PROPERTIES LABELS meta TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "${B_ORACLE}")
endfunction()

# peer_bug(NAME name INPUT seed FILE file FROM text TO text ORACLE regex): meta_peer_<name>.
function(peer_bug)
  cmake_parse_arguments(B "" "NAME;INPUT;ORACLE" "FILE;FROM;TO" ${ARGN})
  seeded_ref_library(NAME ${B_NAME} FILE ${B_FILE} FROM ${B_FROM} TO ${B_TO})
  replay_bug(TEST meta_peer_${B_NAME} NAME ${B_NAME} TARGET fuzz_peer
             INPUT ${PEER_SEEDS}/${B_INPUT} ORACLE "${B_ORACLE}")
  set(PEER_INPUTS ${PEER_INPUTS} ${PEER_SEEDS}/${B_INPUT} PARENT_SCOPE)
endfunction()

# The slot check dropped: an entry naming a slot the client still holds is delivered, and
# the view of the held command is overwritten under the device thread.
peer_bug(NAME slot_reuse_accepted INPUT forged-ring-slot-reuse FILE vdi_client.c
  FROM "if (k >= VDI_RING || d->delivered[k] || e.code < VDC_Read"
  TO "if (k >= VDI_RING || e.code < VDC_Read"
  ORACLE "==fuzz_peer== .*must reject: a tag whose slot")

# The transfer size check dropped: a data command larger than maxTransferSize is delivered.
peer_bug(NAME oversize_accepted INPUT forged-ring-oversize FILE vdi_client.c
  FROM "(e.size < 1 || (uint32_t)e.size > c->max_transfer || e.buf_off == VDI_NO_BUFFER)"
  TO "(e.size < 1 || e.buf_off == VDI_NO_BUFFER)"
  ORACLE "==fuzz_peer== .*must reject: a data size outside")

# The ring bound dropped: a head published out of the ring is read as commands.
peer_bug(NAME head_jump_accepted INPUT forged-ring-head-jump FILE vdi_client.c
  FROM "    if (head - tail > VDI_RING)\n        return -1@S@\n    vdi_cmd_shm e"
  TO "    vdi_cmd_shm e"
  ORACLE "==fuzz_peer== .*whose head is out of it")

# The agent takes a completion into its FIFO but does not count it: the invariants of the
# server's private state (vdi_validate.c) name the break at the next step, in fuzz_peer's
# own check or the debug build's at the agent's next turn.
peer_bug(NAME taken_not_counted INPUT clean-one-device FILE vdi_agent.c
  FROM "&s->taken[(s->taken_head + s->taken_n++) % (VDI_RING * VDI_MAX_DEVICES)]"
  TO "&s->taken[(s->taken_head + s->taken_n) % (VDI_RING * VDI_MAX_DEVICES)]"
  ORACLE "invariant broken at .*taken FIFO count differs from the taken slots")

# The clean reference on every input above: no finding.
add_test(NAME meta_peer_clean COMMAND fuzz_peer_replay ${PEER_INPUTS})
set_tests_properties(meta_peer_clean PROPERTIES LABELS meta TIMEOUT 60)

# Teeth for the ledger oracle as fuzz_stream and fuzz_peer use it (chaos/ledger.h; the
# scenarios' use of it has its seeded bugs in CMakeLists.txt). In the ASan build only: each
# seeded library is one more copy of the reference to build, and the ledger's checks are
# plain C, the same in every build.
if(NOT VDI_SANITIZE STREQUAL "asan" OR NOT TARGET fuzz_stream_replay)
  return()
endif()
set(STREAM_SEEDS ${PROJECT_SOURCE_DIR}/corpora/fuzz_stream/seed)

# The agent calls every routine twice: the second callback, in both targets.
seeded_ref_library(NAME callback_twice FILE vdi_agent.c
  FROM "    cmd->completionRoutine(cmd)@S@\n    VDI_SCHED(\"server/agent:callback-exit\")@S@"
  TO "    cmd->completionRoutine(cmd)@S@\n    cmd->completionRoutine(cmd)@S@\n    VDI_SCHED(\"server/agent:callback-exit\")@S@")
replay_bug(TEST meta_stream_callback_twice NAME callback_twice TARGET fuzz_stream
  INPUT ${STREAM_SEEDS}/one-device ORACLE "==fuzz_stream== backup: ledger: .*command [0-9]+ got a second callback \\(the agent's\\)")
replay_bug(TEST meta_peer_callback_twice NAME callback_twice TARGET fuzz_peer
  INPUT ${PEER_SEEDS}/clean-one-device ORACLE "==fuzz_peer== ledger: .*command [0-9]+ got a second callback \\(the agent's\\)")

# A send refused for the device's I/O-error state calls nothing back (row 6 owes its
# routine a call with 1117, on the sending thread, before the send returns).
seeded_ref_library(NAME io_reject_no_callback FILE vdi_server.c
  FROM "        return REJECT(s, cmd, VD_E_IO_ERROR, ERROR_IO_DEVICE, \"the device is in I/O error\")@S@"
  TO "    {\n        vdi_gate_step_out(&s->g)@S@\n        vdi_unlock(&s->g.mu)@S@\n        return VD_E_IO_ERROR@S@\n    }")
replay_bug(TEST meta_stream_io_reject_no_callback NAME io_reject_no_callback TARGET fuzz_stream
  INPUT ${STREAM_SEEDS}/io-error-clear ORACLE "==fuzz_stream== [a-z]+: ledger: .*returned VD_E_IO_ERROR with 0 callbacks on its thread")
# An accepted send calls its routine too, on the sending thread, before it returns.
seeded_ref_library(NAME accepted_send_calls_back FILE vdi_server.c
  FROM "    VDI_SCHED(\"server/send_command:exit\")@S@\n    return leave(s, NOERROR)@S@"
  TO "    VDI_SCHED(\"server/send_command:exit\")@S@\n    int rc_ = leave(s, NOERROR)@S@\n    cmd->completionRoutine(cmd)@S@\n    return rc_@S@")
replay_bug(TEST meta_stream_accepted_send_calls_back NAME accepted_send_calls_back
  TARGET fuzz_stream INPUT ${STREAM_SEEDS}/one-device
  ORACLE "==fuzz_stream== backup: ledger: .*accepted command [0-9]+ was also called back at once")
# An accepted send answers VD_E_BUSY: the ledger reports it first ("contract"), fuzz_peer's
# own check of the code fails after it, and the finding printed is the ledger's, with the
# target's check as its consequence (fail() keeps the first finding).
seeded_ref_library(NAME accepted_send_says_busy FILE vdi_server.c
  FROM "    VDI_SCHED(\"server/send_command:exit\")@S@\n    return leave(s, NOERROR)@S@"
  TO "    VDI_SCHED(\"server/send_command:exit\")@S@\n    return leave(s, VD_E_BUSY)@S@")
replay_bug(TEST meta_peer_first_finding_kept NAME accepted_send_says_busy TARGET fuzz_peer
  INPUT ${PEER_SEEDS}/clean-one-device
  ORACLE "==fuzz_peer== contract: [^\n]*send_command returned VD_E_BUSY\n  \\(reported first. then: send_command returned VD_E_BUSY, not a code documented")
# The client's view of a command carries a position one past the one sent: fuzz_api's check
# of every delivered command against the sent one (fuzz_check_delivered) names it.
seeded_ref_library(NAME delivered_position_off FILE vdi_client.c
  FROM "    v->position = (int64_t)e.position@S@"
  TO "    v->position = (int64_t)e.position + 1@S@")
set(API_SEEDS ${PROJECT_SOURCE_DIR}/corpora/fuzz_api/seed)
replay_bug(TEST meta_api_delivered_position_off NAME delivered_position_off TARGET fuzz_api
  INPUT ${API_SEEDS}/backup-one-device
  ORACLE "command [0-9]+ delivered as code [0-9]+ size [0-9]+ position [0-9]+, sent")
add_test(NAME meta_api_clean COMMAND fuzz_api_replay ${API_SEEDS}/backup-one-device)
set_tests_properties(meta_api_clean PROPERTIES LABELS meta TIMEOUT 60)
# Both inputs on the clean reference: no finding.
add_test(NAME meta_stream_clean COMMAND fuzz_stream_replay ${STREAM_SEEDS}/one-device
                                        ${STREAM_SEEDS}/io-error-clear)
set_tests_properties(meta_stream_clean PROPERTIES LABELS meta TIMEOUT 60)
