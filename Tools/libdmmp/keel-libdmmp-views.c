/*
 * keel-libdmmp-views: what libdmmp (multipath-tools' C library for management software, which
 * reads the daemon's "show maps json" through its socket) makes of the running daemon's maps.
 * One line per map, group and path, sorted by the caller; the dm-N name is left out because it
 * differs between two daemons' runs on the same devices. Exit status 1 with libdmmp's error
 * when the library refuses the daemon's answer.
 *
 * Built by Tools/libdmmp-check against libdmmp from multipath-tools' own sources.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <libdmmp/libdmmp.h>

int main(void)
{
	struct dmmp_context *ctx = dmmp_context_new();
	struct dmmp_mpath **maps = NULL;
	uint32_t map_count = 0;
	int rc;

	if (ctx == NULL) {
		fprintf(stderr, "keel-libdmmp-views: no memory for a libdmmp context\n");
		return 1;
	}
	dmmp_context_timeout_set(ctx, 30000);
	rc = dmmp_mpath_array_get(ctx, &maps, &map_count);
	if (rc != DMMP_OK) {
		fprintf(stderr, "keel-libdmmp-views: dmmp_mpath_array_get: %s: %s\n", dmmp_strerror(rc),
			dmmp_last_error_msg(ctx));
		dmmp_context_free(ctx);
		return 1;
	}
	for (uint32_t m = 0; m < map_count; m++) {
		struct dmmp_path_group **groups = NULL;
		uint32_t group_count = 0;
		const char *name = dmmp_mpath_name_get(maps[m]);
		const char *wwid = dmmp_mpath_wwid_get(maps[m]);

		printf("map %s wwid=%s\n", name, wwid);
		dmmp_path_group_array_get(maps[m], &groups, &group_count);
		for (uint32_t g = 0; g < group_count; g++) {
			struct dmmp_path **paths = NULL;
			uint32_t path_count = 0;

			printf("map %s group %" PRIu32 " priority=%" PRIu32 " status=%s selector=%s\n", name,
			       dmmp_path_group_id_get(groups[g]), dmmp_path_group_priority_get(groups[g]),
			       dmmp_path_group_status_str(dmmp_path_group_status_get(groups[g])),
			       dmmp_path_group_selector_get(groups[g]));
			dmmp_path_array_get(groups[g], &paths, &path_count);
			for (uint32_t p = 0; p < path_count; p++)
				printf("map %s group %" PRIu32 " path %s status=%s\n", name,
				       dmmp_path_group_id_get(groups[g]), dmmp_path_blk_name_get(paths[p]),
				       dmmp_path_status_str(dmmp_path_status_get(paths[p])));
		}
	}
	dmmp_mpath_array_free(maps, map_count);
	dmmp_context_free(ctx);
	return 0;
}
