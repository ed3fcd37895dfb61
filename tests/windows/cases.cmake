# windows_test_cases(OUT_CASES OUT_LIST_TEXT source...): the TEST_CASE(name)
# lines of each test_<module>.c, as "<module>:<case>" items, and the
# TEST_LIST(...) text of the generated case header.  Used by the program's
# build (program.cmake) and by its CTest registration (CMakeLists.txt), so
# each case is named in its source only.
function(windows_test_cases out_cases out_text)
  set(cases "")
  set(text "")
  foreach(src ${ARGN})
    get_filename_component(module "${src}" NAME_WE)
    string(REGEX REPLACE "^test_" "" module "${module}")
    file(STRINGS "${src}" lines REGEX "^TEST_CASE\\([a-z0-9_]+\\)")
    foreach(line ${lines})
      string(REGEX REPLACE "^TEST_CASE\\(([a-z0-9_]+)\\).*" "\\1" c "${line}")
      list(APPEND cases "${module}:${c}")
      string(APPEND text "TEST_LIST(${c})\n")
    endforeach()
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${src}")
  endforeach()
  set(${out_cases} "${cases}" PARENT_SCOPE)
  set(${out_text} "${text}" PARENT_SCOPE)
endfunction()

set(WINDOWS_TEST_SOURCES
  "${CMAKE_CURRENT_LIST_DIR}/test_move.c"
  "${CMAKE_CURRENT_LIST_DIR}/test_path.c"
  "${CMAKE_CURRENT_LIST_DIR}/test_system.c")
