/* version: the release of scanengine. */
#ifndef SE_SCANENGINE_VERSION_H
#define SE_SCANENGINE_VERSION_H

#define SCANENGINE_VERSION "0.1.0"

#endif
