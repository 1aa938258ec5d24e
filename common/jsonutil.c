/* jsonutil: small json-c helpers (see jsonutil.h). */
#include "common/jsonutil.h"

#include <errno.h>
#include <json-c/json.h>

int jsonutil_add(struct json_object *o, const char *key, struct json_object *val)
{
	if (!val)
		return -ENOMEM;
	if (json_object_object_add(o, key, val) < 0) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}
