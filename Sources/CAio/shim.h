// libaio: io_setup/io_submit/io_getevents allocate nothing; the directio checker uses them.
#include <libaio.h>
