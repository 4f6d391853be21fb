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

# peer_bug(NAME name INPUT seed FILE file FROM text TO text ORACLE regex)
function(peer_bug)
  cmake_parse_arguments(B "" "NAME;INPUT;ORACLE" "FILE;FROM;TO" ${ARGN})
  seeded_ref_library(NAME ${B_NAME} FILE ${B_FILE} FROM ${B_FROM} TO ${B_TO})
  set(fz ${PROJECT_SOURCE_DIR}/fuzz)
  add_executable(fuzz_peer_replay_${B_NAME} ${fz}/fuzz_peer.c ${fz}/replay_driver.c)
  target_include_directories(fuzz_peer_replay_${B_NAME} PRIVATE ${fz})
  target_link_libraries(fuzz_peer_replay_${B_NAME} PRIVATE meta_lib_${B_NAME})
  # Through sh: an abort() is an exit status there, and ctest judges the output alone.
  add_test(NAME meta_peer_${B_NAME}
           COMMAND sh -c "\"$0\" \"$1\" 2>&1; echo \"exit status $?\""
                   $<TARGET_FILE:fuzz_peer_replay_${B_NAME}> ${PEER_SEEDS}/${B_INPUT})
  set_tests_properties(meta_peer_${B_NAME} PROPERTIES LABELS meta TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "${B_ORACLE}")
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
