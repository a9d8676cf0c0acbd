# yb_libs.m4 - find the external libraries. A missing one stops configure
# with the name of the Debian package that provides it.

# YB_PKG(VAR, module, debian-package)
AC_DEFUN([YB_PKG], [
  PKG_CHECK_MODULES([$1], [$2], [],
    [AC_MSG_ERROR([$2 not found: install the Debian package $3 (apt-get install $3)])])
])

# YB_HEADER_LIB(VAR, header, library, function, debian-package, [prologue])
AC_DEFUN([YB_HEADER_LIB], [
  AC_CHECK_HEADER([$2], [],
    [AC_MSG_ERROR([$2 not found: install the Debian package $5 (apt-get install $5)])],
    [AC_INCLUDES_DEFAULT
$6])
  yb_save_LIBS=$LIBS
  AC_SEARCH_LIBS([$4], [$3], [],
    [AC_MSG_ERROR([lib$3 not found: install the Debian package $5 (apt-get install $5)])])
  LIBS=$yb_save_LIBS
  $1_LIBS="-l$3"
  AC_SUBST([$1_LIBS])
])

AC_DEFUN([YB_LIBRARIES], [
  # Threads (libutil/fileop_pool.c): in libc on current glibc, -lpthread
  # elsewhere; added to LIBS for every program.
  AC_CHECK_HEADER([pthread.h], [], [AC_MSG_ERROR([pthread.h not found: install the Debian package libc6-dev])])
  AC_SEARCH_LIBS([pthread_create], [pthread], [],
    [AC_MSG_ERROR([no POSIX threads: install the Debian package libc6-dev])])
  YB_PKG([OPENSSL], [openssl >= 3.0], [libssl-dev])
  YB_PKG([LIBEVENT], [libevent >= 2.1 libevent_openssl >= 2.1], [libevent-dev])
  YB_PKG([SASL], [libsasl2], [libsasl2-dev])
  YB_PKG([UNBOUND], [libunbound], [libunbound-dev])
  YB_PKG([OPENDKIM], [opendkim], [libopendkim-dev])
  YB_HEADER_LIB([BDB], [db.h], [db], [db_create], [libdb-dev])
  YB_HEADER_LIB([SPF2], [spf2/spf.h], [spf2], [SPF_server_new], [libspf2-dev],
    [[#include <netinet/in.h>
#include <arpa/nameser.h>]])
  YB_HEADER_LIB([CRYPT], [crypt.h], [crypt], [crypt_gensalt_ra], [libcrypt-dev])
  PKG_CHECK_MODULES([CMOCKA], [cmocka], [],
    [AC_MSG_ERROR([cmocka not found (needed by make check): install the Debian package libcmocka-dev])])
])
