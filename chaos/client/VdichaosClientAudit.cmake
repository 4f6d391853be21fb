# VdichaosClientAudit.cmake: put a vdichaos client audit of your VDI client into ctest.
#
#   include(VdichaosClientAudit)
#   vdichaos_add_client_audit(NAME backup_audit
#                             COMMAND $<TARGET_FILE:mytool> backup sales ${CMAKE_BINARY_DIR}/sales.bak
#                             [PLANS clean|sweep|random]   # default sweep
#                             [BUDGET seconds]             # default 120: no run starts after it
#                             [OPTIONS --faults abort,close --media ... --statement ...])
#
# The test fails on any finding; findings are saved under
# ${CMAKE_CURRENT_BINARY_DIR}/NAME-findings as plans, with the command that replays them.
# VDICHAOS_EXECUTABLE names vdichaos (found on PATH when unset); VDICHAOS_SQLCMD and
# VDICHAOS_LIB, in the environment, point at vdi-sqlcmd and libsqlvdi.so when they are not
# beside it.
function(vdichaos_add_client_audit)
  cmake_parse_arguments(A "" "NAME;PLANS;BUDGET" "COMMAND;OPTIONS" ${ARGN})
  if(NOT A_NAME OR NOT A_COMMAND)
    message(FATAL_ERROR "vdichaos_add_client_audit: NAME and COMMAND are required")
  endif()
  if(NOT A_PLANS)
    set(A_PLANS sweep)
  endif()
  if(NOT A_BUDGET)
    set(A_BUDGET 120)
  endif()
  if(NOT VDICHAOS_EXECUTABLE)
    find_program(VDICHAOS_EXECUTABLE vdichaos)
    if(NOT VDICHAOS_EXECUTABLE)
      message(FATAL_ERROR "vdichaos_add_client_audit: vdichaos not found; set VDICHAOS_EXECUTABLE")
    endif()
  endif()
  add_test(NAME ${A_NAME}
           COMMAND ${VDICHAOS_EXECUTABLE} client --plans ${A_PLANS} --budget ${A_BUDGET}s
                   --findings ${CMAKE_CURRENT_BINARY_DIR}/${A_NAME}-findings ${A_OPTIONS} --
                   ${A_COMMAND})
  # a run started just before the budget may take the hang limit (30 s) and its stacks
  math(EXPR timeout "${A_BUDGET} + 90")
  set_tests_properties(${A_NAME} PROPERTIES TIMEOUT ${timeout} LABELS client-audit)
endfunction()
