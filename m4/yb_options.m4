# yb_options.m4 - --enable-werror, --enable-sanitizers, --with-fuzzer and
# the helper that adds a compiler flag only when the compiler accepts it.

# AX_YB_CFLAG(FLAG): append FLAG to YB_CFLAGS if $CC accepts it.
AC_DEFUN([AX_YB_CFLAG], [
  AC_MSG_CHECKING([whether $CC accepts $1])
  yb_save_CFLAGS=$CFLAGS
  CFLAGS="$CFLAGS -Werror $1"
  AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
    [AC_MSG_RESULT([yes]); YB_CFLAGS="$YB_CFLAGS $1"],
    [AC_MSG_RESULT([no])])
  CFLAGS=$yb_save_CFLAGS
  AC_SUBST([YB_CFLAGS])
])

# AX_YB_LDFLAG(FLAG): append FLAG to YB_LDFLAGS if linking with it works.
AC_DEFUN([AX_YB_LDFLAG], [
  AC_MSG_CHECKING([whether the linker accepts $1])
  yb_save_LDFLAGS=$LDFLAGS
  LDFLAGS="$LDFLAGS $1"
  AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])],
    [AC_MSG_RESULT([yes]); YB_LDFLAGS="$YB_LDFLAGS $1"],
    [AC_MSG_RESULT([no])])
  LDFLAGS=$yb_save_LDFLAGS
  AC_SUBST([YB_LDFLAGS])
])

AC_DEFUN([YB_OPTIONS], [
  AC_ARG_ENABLE([werror],
    [AS_HELP_STRING([--enable-werror], [treat compiler warnings as errors])],
    [], [enable_werror=no])
  AC_ARG_ENABLE([sanitizers],
    [AS_HELP_STRING([--enable-sanitizers], [build with AddressSanitizer and UndefinedBehaviorSanitizer])],
    [], [enable_sanitizers=no])
  AC_ARG_WITH([fuzzer],
    [AS_HELP_STRING([--with-fuzzer], [build libFuzzer targets in tests/fuzz (needs clang)])],
    [], [with_fuzzer=no])

  AX_YB_CFLAG([-Wall])
  AX_YB_CFLAG([-Wextra])
  AX_YB_CFLAG([-Wformat=2])
  AX_YB_CFLAG([-Wshadow])
  AX_YB_CFLAG([-Wmissing-prototypes])
  AX_YB_CFLAG([-Wstrict-prototypes])
  AX_YB_CFLAG([-Wvla])
  AS_IF([test "x$enable_werror" = xyes], [AX_YB_CFLAG([-Werror])])

  AS_IF([test "x$enable_sanitizers" = xyes], [
    AX_YB_CFLAG([-fsanitize=address,undefined])
    AX_YB_CFLAG([-fno-sanitize-recover=undefined])
    AX_YB_CFLAG([-fno-omit-frame-pointer])
    AX_YB_LDFLAG([-fsanitize=address,undefined])
  ])

  AS_IF([test "x$with_fuzzer" = xyes], [
    AC_MSG_CHECKING([whether $CC can build libFuzzer targets])
    yb_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -fsanitize=fuzzer"
    AC_LINK_IFELSE([AC_LANG_SOURCE([[
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }
]])], [AC_MSG_RESULT([yes])],
      [AC_MSG_RESULT([no]); AC_MSG_ERROR([--with-fuzzer needs clang with libFuzzer: configure with CC=clang (Debian packages clang, libclang-rt-14-dev)])])
    CFLAGS=$yb_save_CFLAGS
    # Everything gets coverage instrumentation; only the targets link the
    # libFuzzer driver (which brings its own main).
    YB_CFLAGS="$YB_CFLAGS -fsanitize=fuzzer-no-link,address,undefined"
    YB_LDFLAGS="$YB_LDFLAGS -fsanitize=address,undefined"
    FUZZ_CFLAGS="-fsanitize=fuzzer"
    AC_SUBST([FUZZ_CFLAGS])
  ])
  AM_CONDITIONAL([WITH_FUZZER], [test "x$with_fuzzer" = xyes])
])
