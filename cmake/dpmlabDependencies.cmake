# The third-party libraries the dpmlab libraries link, found the same way by the build (the top
# CMakeLists.txt) and by an installed dpmlabConfig.cmake, so a consumer links exactly what the
# libraries were built against. The includer defines dpm_find_package(): find_package(...
# REQUIRED) in the build, find_dependency(...) in the package config.
#
# OpenBLAS/LAPACKE and stb ship no CMake package: they become the imported targets
# dpmlab::openblas and dpmlab::stb: imported, so an exported target names them instead of
# copying their paths and the config file defines them again on the consumer's machine; global,
# so a project that adds dpmlab as a subdirectory resolves them too.
dpm_find_package(Threads)
dpm_find_package(TBB)
dpm_find_package(ZLIB)
dpm_find_package(nlohmann_json)
if(DPM_USES_MPI)
  dpm_find_package(MPI)
endif()

if(NOT TARGET dpmlab::openblas)
  find_library(OPENBLAS_LIB NAMES openblas REQUIRED)
  find_path(OPENBLAS_INCLUDE cblas.h PATHS /usr/include/x86_64-linux-gnu/openblas-pthread
            /usr/include/openblas NO_DEFAULT_PATH)
  if(NOT OPENBLAS_INCLUDE)
    find_path(OPENBLAS_INCLUDE cblas.h REQUIRED)
  endif()
  find_library(LAPACKE_LIB NAMES lapacke REQUIRED)
  add_library(dpmlab::openblas INTERFACE IMPORTED GLOBAL)
  target_include_directories(dpmlab::openblas SYSTEM INTERFACE ${OPENBLAS_INCLUDE})
  target_link_libraries(dpmlab::openblas INTERFACE ${LAPACKE_LIB} ${OPENBLAS_LIB})
endif()

# Debian's libstb holds the stb_image and stb_image_write implementations, so it is only linked.
if(NOT TARGET dpmlab::stb)
  find_path(STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb REQUIRED)
  find_library(STB_LIB NAMES stb REQUIRED)
  add_library(dpmlab::stb INTERFACE IMPORTED GLOBAL)
  target_include_directories(dpmlab::stb SYSTEM INTERFACE ${STB_INCLUDE_DIR})
  target_link_libraries(dpmlab::stb INTERFACE ${STB_LIB})
endif()
