// libudev, for Keel's event thread (it allocates per event: never on the recovery thread).
#include <libudev.h>
