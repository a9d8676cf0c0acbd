# yb_hardening.m4 - hardening flags on by default: PIE, full RELRO,
# _FORTIFY_SOURCE, stack protector. --disable-hardening turns them off.
AC_DEFUN([YB_HARDENING], [
  AC_ARG_ENABLE([hardening],
    [AS_HELP_STRING([--disable-hardening], [do not add PIE, RELRO, FORTIFY and stack-protector flags])],
    [], [enable_hardening=yes])
  AS_IF([test "x$enable_hardening" = xyes], [
    AX_YB_CFLAG([-fPIE])
    AX_YB_CFLAG([-fstack-protector-strong])
    AX_YB_CFLAG([-fstack-clash-protection])
    AX_YB_LDFLAG([-pie])
    AX_YB_LDFLAG([-Wl,-z,relro])
    AX_YB_LDFLAG([-Wl,-z,now])
    AX_YB_LDFLAG([-Wl,-z,noexecstack])
    # FORTIFY needs optimisation; sanitizer builds replace it.
    AS_IF([test "x$enable_sanitizers" != xyes], [
      YB_CPPFLAGS="$YB_CPPFLAGS -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2"
    ])
  ])
  AC_SUBST([YB_CPPFLAGS])
])
