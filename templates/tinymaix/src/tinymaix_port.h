/* TinyMaix's configuration for this build (tinyml-scons). TinyMaix reads it from include/tm_port.h of your
 * checkout; a build force-includes this file instead (gcc -include tinymaix_port.h -DTINYML_TM_ARCH=...), which
 * takes your tm_port.h as it is and sets only what the build decides: the architecture of the kernels and the
 * int8 model type. tm_port.h's include guard then keeps tinymaix.h from reading it a second time. */
#ifndef TINYML_TINYMAIX_PORT_H_
#define TINYML_TINYMAIX_PORT_H_

#include "tm_port.h"

#ifdef TINYML_TM_ARCH
#undef TM_ARCH
#define TM_ARCH TINYML_TM_ARCH
#endif
#undef TM_MDL_TYPE
#define TM_MDL_TYPE TM_MDL_INT8

#endif  /* TINYML_TINYMAIX_PORT_H_ */
