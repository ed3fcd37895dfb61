# The Debian package, built by CPack from the install rules:
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF &&
#     cmake --build build-deb --target package
# CPack rather than a debian/ folder: the install rules are the one list
# of what is installed, and the package cannot drift from `cmake
# --install`.  The package's prefix is the configured one, so the paths
# compiled into the programs are where the package puts the files.
set(CPACK_PACKAGE_NAME reimage)
set(CPACK_PACKAGE_VENDOR "reimage")
set(CPACK_PACKAGE_CONTACT "reimage maintainers <reimage@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "re-image a running machine in place on a signed command")
set(CPACK_PACKAGE_DESCRIPTION "reimage stages a new root image beside the running one, swaps it
in with a journaled exchange of directories and boots it on trial; a
boot guard rolls back an image that does not come up healthy.  The
agent polls a job store (a directory, HTTP or SMB) and runs the jobs an
administrator signed.")
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies come from dpkg-shlibdeps; the maintainer scripts'
# deb-systemd-helper is the one listed by hand.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "init-system-helpers (>= 1.54~)")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${CMAKE_CURRENT_LIST_DIR}/debian/postinst"
  "${CMAKE_CURRENT_LIST_DIR}/debian/prerm" "${CMAKE_CURRENT_LIST_DIR}/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
# An .rpm from the same rules when rpmbuild is there (dependencies from
# rpmbuild's own scan); no unit scripts: the administrator enables it.
find_program(REIMAGE_RPMBUILD rpmbuild)
if(REIMAGE_RPMBUILD)
  list(APPEND CPACK_GENERATOR RPM)
  set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
  set(CPACK_RPM_PACKAGE_LICENSE "unspecified")
  set(CPACK_RPM_PACKAGE_AUTOREQ ON)
endif()
include(CPack)
