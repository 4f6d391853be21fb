# vdichaos_add_client_audit: a ctest that audits a VDI client with `vdichaos client` (an
# adversarial server plan per run, the oracles of chaos/client/README.md). For a vendor's
# own project, after find_package(vdichaos):
#
#   vdichaos_add_client_audit(NAME mytool_backup
#       COMMAND $<TARGET_FILE:mytool> backup sales ${CMAKE_CURRENT_BINARY_DIR}/out.bak
#       MEDIA ${CMAKE_CURRENT_BINARY_DIR}/out.bak PLANS sweep BUDGET 300)
#
#   NAME       the test's name (label client-audit); findings go to <build>/NAME.findings/
#   COMMAND    the client and its arguments, run unchanged ("{set}" is the run's set name)
#   PLANS      clean | sweep (default) | random
#   BUDGET     seconds: no run starts after it (default 120); the test's timeout is 2 min more
#   STATEMENT  the statement vdichaos starts vdi-sqlcmd with, for a client that does not
#              start sqlcmd itself
#   MEDIA      the file the client presents as a complete backup (judged by the truth oracle)
#   SEED RUNS  random plans: the seed and the number of runs
#   OPTIONS    any other `vdichaos client` options
# The test passes when no plan ends in a finding; each finding is printed with its replay
# command. vdichaos is the package's (find_package(vdichaos)) or this tree's target; without
# either, VDICHAOS_EXECUTABLE or vdichaos on PATH, which finds vdi-sqlcmd and libsqlvdi.so
# beside itself (VDICHAOS_SQLCMD and VDICHAOS_LIB in the environment override).
function(vdichaos_add_client_audit)
  cmake_parse_arguments(A "" "NAME;PLANS;BUDGET;STATEMENT;MEDIA;SEED;RUNS" "COMMAND;OPTIONS"
                        ${ARGN})
  if(NOT A_NAME OR NOT A_COMMAND)
    message(FATAL_ERROR "vdichaos_add_client_audit: NAME and COMMAND are required")
  endif()
  if(A_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "vdichaos_add_client_audit(${A_NAME}): unknown '${A_UNPARSED_ARGUMENTS}'")
  endif()
  if(NOT A_PLANS)
    set(A_PLANS sweep)
  endif()
  if(NOT A_PLANS MATCHES "^(clean|sweep|random)$")
    message(FATAL_ERROR "vdichaos_add_client_audit(${A_NAME}): PLANS is clean, sweep or random")
  endif()
  if(NOT A_BUDGET)
    set(A_BUDGET 120)
  endif()
  if(NOT A_BUDGET MATCHES "^[0-9]+$")
    message(FATAL_ERROR "vdichaos_add_client_audit(${A_NAME}): BUDGET is whole seconds")
  endif()
  # The installed package's targets, or this tree's own, or a vdichaos program.
  foreach(v vdichaos vdi-sqlcmd sqlvdi)
    set(tgt_${v})
    foreach(t vdichaos::${v} vdiref::${v} ${v})
      if(TARGET ${t} AND NOT tgt_${v})
        set(tgt_${v} ${t})
      endif()
    endforeach()
  endforeach()
  set(args client --plans ${A_PLANS} --budget ${A_BUDGET}s
           --findings ${CMAKE_CURRENT_BINARY_DIR}/${A_NAME}.findings)
  if(tgt_vdichaos)
    set(tool ${tgt_vdichaos})
  else()
    if(NOT VDICHAOS_EXECUTABLE)
      find_program(VDICHAOS_EXECUTABLE vdichaos)
    endif()
    if(NOT VDICHAOS_EXECUTABLE)
      message(FATAL_ERROR "vdichaos_add_client_audit: no vdichaos (find_package(vdichaos), "
                          "or set VDICHAOS_EXECUTABLE)")
    endif()
    set(tool ${VDICHAOS_EXECUTABLE})
  endif()
  if(tgt_vdi-sqlcmd)
    list(APPEND args --sqlcmd $<TARGET_FILE:${tgt_vdi-sqlcmd}>)
  endif()
  if(tgt_sqlvdi)
    list(APPEND args --lib $<TARGET_FILE_DIR:${tgt_sqlvdi}>)
  endif()
  if(A_STATEMENT)
    list(APPEND args --statement ${A_STATEMENT})
  endif()
  if(A_MEDIA)
    list(APPEND args --media ${A_MEDIA})
  endif()
  if(A_SEED)
    list(APPEND args --seed ${A_SEED})
  endif()
  if(A_RUNS)
    list(APPEND args --runs ${A_RUNS})
  endif()
  add_test(NAME ${A_NAME} COMMAND ${tool} ${args} ${A_OPTIONS} -- ${A_COMMAND})
  math(EXPR timeout "${A_BUDGET} + 120")
  set_tests_properties(${A_NAME} PROPERTIES LABELS client-audit TIMEOUT ${timeout})
endfunction()
