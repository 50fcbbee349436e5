# Finds altclip's dependencies (Debian: libeigen3-dev libsentencepiece-dev libstb-dev).
# Used by the build and by the installed package config. The library reads JSON itself
# (include/altclip/format/json.hpp); only the examples and tests use nlohmann_json.
include(CMakeFindDependencyMacro)
find_dependency(Eigen3 3.3 NO_MODULE)
find_dependency(Threads)
find_dependency(PkgConfig)

# sentencepiece and stb ship pkg-config files only; wrap them in plain imported targets
# so that the exported altclip target can name them.
if(NOT TARGET altclip_sentencepiece)
  pkg_check_modules(ALTCLIP_SPM QUIET sentencepiece)
  find_path(ALTCLIP_SPM_INCLUDE sentencepiece_processor.h HINTS ${ALTCLIP_SPM_INCLUDE_DIRS})
  find_library(ALTCLIP_SPM_LIB sentencepiece HINTS ${ALTCLIP_SPM_LIBRARY_DIRS})
  if(NOT ALTCLIP_SPM_INCLUDE OR NOT ALTCLIP_SPM_LIB)
    message(FATAL_ERROR "altclip needs sentencepiece: apt-get install libsentencepiece-dev")
  endif()
  add_library(altclip_sentencepiece INTERFACE IMPORTED)
  set_target_properties(altclip_sentencepiece PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${ALTCLIP_SPM_INCLUDE}"
    INTERFACE_LINK_LIBRARIES "${ALTCLIP_SPM_LIB}")
endif()
if(NOT TARGET altclip_stb)
  pkg_check_modules(ALTCLIP_STB QUIET stb)
  find_path(ALTCLIP_STB_INCLUDE stb_image.h HINTS ${ALTCLIP_STB_INCLUDE_DIRS} PATH_SUFFIXES stb)
  find_library(ALTCLIP_STB_LIB stb HINTS ${ALTCLIP_STB_LIBRARY_DIRS})
  if(NOT ALTCLIP_STB_INCLUDE OR NOT ALTCLIP_STB_LIB)
    message(FATAL_ERROR "altclip needs stb_image: apt-get install libstb-dev")
  endif()
  add_library(altclip_stb INTERFACE IMPORTED)
  set_target_properties(altclip_stb PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${ALTCLIP_STB_INCLUDE}"
    INTERFACE_LINK_LIBRARIES "${ALTCLIP_STB_LIB}")
endif()
