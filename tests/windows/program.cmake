# The windows backend's test program, windows-tests.exe, built by the
# plugin's own (Windows or mingw-w64) build: plugins/windows/CMakeLists.txt
# includes this file.  On a Windows host CTest runs it directly; from
# Linux, tests/windows/CMakeLists.txt runs it under wine64.
include("${CMAKE_CURRENT_LIST_DIR}/cases.cmake")
windows_test_cases(cases list_text ${WINDOWS_TEST_SOURCES})
set(hdr "${CMAKE_CURRENT_BINARY_DIR}/windows_tests_cases.h")
file(CONFIGURE OUTPUT "${hdr}" CONTENT "${list_text}")
add_executable(windows-tests ${WINDOWS_TEST_SOURCES}
  "${CMAKE_CURRENT_LIST_DIR}/runner.c" "${CMAKE_CURRENT_LIST_DIR}/fake_sys.c")
target_compile_definitions(windows-tests PRIVATE TEST_CASES_H="${hdr}")
target_include_directories(windows-tests PRIVATE "${CMAKE_CURRENT_LIST_DIR}")
target_link_libraries(windows-tests PRIVATE windows-objs ${WINDOWS_LIBS})
if(NOT CMAKE_CROSSCOMPILING)
  foreach(item ${cases})
    string(REPLACE ":" "_" name "${item}")
    string(REGEX REPLACE "^[^:]*:" "" c "${item}")
    add_test(NAME windows_${name} COMMAND windows-tests ${c})
    set_tests_properties(windows_${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
      LABELS unit RESOURCE_LOCK windows_pending_renames)
  endforeach()
endif()
