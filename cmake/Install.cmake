# What `cmake --install` puts under the prefix:
#   lib/       libvdiref.a, libvdiref.so.MAJOR (the reference C API), libsqlvdi.so (the
#              SDK's client classes, named as the SDK's programs link it);
#   include/   vdi/vdi.h, vdi/vdi_seams.h; sqlvdi/vdi.h, sqlvdi/vdierror.h (the SDK);
#   bin/       vdi-client, vdi-server, vdi-sqlcmd, vdichaos;
#   lib/cmake/vdiref/   find_package(vdiref): vdiref::vdiref, vdiref::vdiref_shared,
#                       vdiref::sqlvdi;
#   lib/cmake/vdichaos/ find_package(vdichaos): vdichaos::vdichaos, vdichaos::vdi-sqlcmd
#                       and vdichaos_add_client_audit() (cmake/VdichaosClientAudit.cmake);
#   lib/pkgconfig/      vdiref.pc, sqlvdi.pc.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS vdiref vdiref_shared sqlvdi EXPORT vdirefTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET vdichaos_sched) # preloaded by vdichaos client --sched, found beside libsqlvdi.so
  install(TARGETS vdichaos_sched LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(FILES ${PROJECT_SOURCE_DIR}/ref/include/vdi/vdi.h
              ${PROJECT_SOURCE_DIR}/ref/include/vdi/vdi_seams.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/vdi)
install(FILES ${PROJECT_SOURCE_DIR}/ref/compat/include/vdi.h
              ${PROJECT_SOURCE_DIR}/ref/compat/include/vdierror.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sqlvdi)
foreach(t vdi-client vdi-server)
  install(TARGETS ${t} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endforeach()

set(VDI_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/vdiref)
install(EXPORT vdirefTargets NAMESPACE vdiref:: DESTINATION ${VDI_CMAKE_DIR})
file(WRITE ${PROJECT_BINARY_DIR}/vdirefConfig.cmake.in [=[
@PACKAGE_INIT@
include(CMakeFindDependencyMacro)
find_dependency(Threads)
include(${CMAKE_CURRENT_LIST_DIR}/vdirefTargets.cmake)
check_required_components(vdiref)
]=])
configure_package_config_file(${PROJECT_BINARY_DIR}/vdirefConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/vdirefConfig.cmake
                              INSTALL_DESTINATION ${VDI_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/vdirefConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/vdirefConfig.cmake
              ${PROJECT_BINARY_DIR}/vdirefConfigVersion.cmake
        DESTINATION ${VDI_CMAKE_DIR})

# pkg-config: relative to the .pc file's own place, so a moved prefix still works.
file(RELATIVE_PATH pc_up /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
foreach(pc vdiref sqlvdi)
  if(pc STREQUAL "vdiref")
    set(pc_desc "Reference implementation of the VDI protocol (C API)")
    set(pc_cflags "-I\${includedir}")
    set(pc_libs "-L\${libdir} -lvdiref")
    set(pc_private "-lpthread -lrt")
  else()
    set(pc_desc "SQL Server VDI client classes (libsqlvdi.so) over the vdichaos reference")
    set(pc_cflags "-I\${includedir}/sqlvdi")
    set(pc_libs "-L\${libdir} -lsqlvdi")
    set(pc_private "-lpthread")
  endif()
  file(WRITE ${PROJECT_BINARY_DIR}/${pc}.pc
       "prefix=\${pcfiledir}/${pc_up}\n"
       "libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}\n"
       "includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}\n\n"
       "Name: ${pc}\n"
       "Description: ${pc_desc}\n"
       "Version: ${PROJECT_VERSION}\n"
       "Cflags: ${pc_cflags}\n"
       "Libs: ${pc_libs}\n"
       "Libs.private: ${pc_private}\n")
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()

# find_package(vdichaos): the audit tool and the server it plays, and the ctest helper.
if(TARGET vdichaos AND TARGET vdi-sqlcmd)
  install(TARGETS vdichaos vdi-sqlcmd EXPORT vdichaosTargets
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  set(VDICHAOS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/vdichaos)
  install(EXPORT vdichaosTargets NAMESPACE vdichaos:: DESTINATION ${VDICHAOS_CMAKE_DIR})
  file(WRITE ${PROJECT_BINARY_DIR}/vdichaosConfig.cmake.in [=[
@PACKAGE_INIT@
include(CMakeFindDependencyMacro)
if(NOT vdiref_DIR)
  set(vdiref_DIR ${CMAKE_CURRENT_LIST_DIR}/../vdiref)
endif()
find_dependency(vdiref @PROJECT_VERSION@)
include(${CMAKE_CURRENT_LIST_DIR}/vdichaosTargets.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/VdichaosClientAudit.cmake)
check_required_components(vdichaos)
]=])
  configure_package_config_file(${PROJECT_BINARY_DIR}/vdichaosConfig.cmake.in
                                ${PROJECT_BINARY_DIR}/vdichaosConfig.cmake
                                INSTALL_DESTINATION ${VDICHAOS_CMAKE_DIR})
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/vdichaosConfigVersion.cmake
                                   VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/vdichaosConfig.cmake
                ${PROJECT_BINARY_DIR}/vdichaosConfigVersion.cmake
                ${PROJECT_SOURCE_DIR}/cmake/VdichaosClientAudit.cmake
          DESTINATION ${VDICHAOS_CMAKE_DIR})
endif()
