/* jsonutil: small json-c helpers. */
#ifndef SE_COMMON_JSONUTIL_H
#define SE_COMMON_JSONUTIL_H

struct json_object;

/* jsonutil_add: json_object_object_add that owns val in every case (json-c
 * leaves it to the caller when it fails); a NULL val (a constructor that
 * failed) is an error too. Returns 0 or -ENOMEM. */
int jsonutil_add(struct json_object *o, const char *key, struct json_object *val);

#endif
