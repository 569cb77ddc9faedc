// libdevmapper, for Keel's control plane (it allocates per task: never on the recovery thread).
#include <libdevmapper.h>
