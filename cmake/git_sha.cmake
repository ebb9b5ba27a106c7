# Writes the commit a build is made from, "-dirty" when tracked files differ from it, into the
# header OUT (script mode: cmake -DSOURCE_DIR=... -DOUT=... -P git_sha.cmake). Run on every
# build; the header is rewritten only when its text changes, so only what includes it rebuilds.
cmake_minimum_required(VERSION 3.18)
execute_process(COMMAND git describe --always --dirty --abbrev=12 WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE sha OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT sha)
  set(sha unknown)
endif()
set(text "#define KVLAB_GIT_SHA \"${sha}\"\n")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUT} "${text}")
endif()
