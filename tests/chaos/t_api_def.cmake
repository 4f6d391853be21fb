# t_api_def.cmake: every public function of vdi.h is in vdi_api.def, and every entry of the
# .def is a function of vdi.h. The recorder's wrappers and their --wrap list come from the
# .def, so a function of the API that it missed would escape the model oracle and the
# replay's timeline without a word.
#   cmake -DVDI_H=ref/include/vdi/vdi.h -DDEF=chaos/model/include/vdi_api.def
#         [-DDROP=vdi_name] -P t_api_def.cmake
# DROP reads the .def as if that entry were not there: the test's own teeth (it must fail).
cmake_minimum_required(VERSION 3.20)
file(STRINGS ${VDI_H} decls REGEX "^[A-Za-z].*[ *]vdi_[a-z_]+\\(")
set(api)
foreach(line ${decls})
  string(REGEX MATCH "vdi_[a-z_]+\\(" f "${line}")
  string(REPLACE "(" "" f "${f}")
  list(APPEND api ${f})
endforeach()
list(LENGTH api napi)
if(napi LESS 30)
  message(FATAL_ERROR "only ${napi} functions found in ${VDI_H}: the declarations' form changed")
endif()

file(STRINGS ${DEF} entries REGEX "^VDI_(CALL|ALIAS|PLAIN)\\(vdi_[a-z_]+,")
set(listed)
set(wrapped)
foreach(line ${entries})
  string(REGEX REPLACE "^VDI_(CALL|ALIAS|PLAIN)\\((vdi_[a-z_]+),.*" "\\1;\\2" kf "${line}")
  list(GET kf 0 kind)
  list(GET kf 1 f)
  if(DEFINED DROP AND f STREQUAL DROP)
    continue()
  endif()
  list(APPEND listed ${f})
  if(NOT kind STREQUAL "PLAIN")
    list(APPEND wrapped ${f})
  endif()
endforeach()

set(missing ${api})
list(REMOVE_ITEM missing ${listed})
set(extra ${listed})
list(REMOVE_ITEM extra ${api})
if(missing OR extra)
  message(FATAL_ERROR "vdi_api.def and vdi.h disagree: in vdi.h, not in the .def: ${missing}; "
                      "in the .def, not in vdi.h: ${extra}")
endif()
list(LENGTH wrapped nwrapped)
math(EXPR nplain "${napi} - ${nwrapped}")
message(STATUS "the ${napi} functions of vdi.h are in vdi_api.def: ${nwrapped} wrapped, "
               "${nplain} not (they change nothing the model sees)")
