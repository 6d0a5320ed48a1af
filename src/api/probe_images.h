/* probe_images: the embedded images of /image (see scripts/gen_probe_images.py). */
#ifndef AWAITD_PROBE_IMAGES_H
#define AWAITD_PROBE_IMAGES_H

#include <stddef.h>

struct probe_image {
    const char *name;  /* "png", "jpeg", "webp", "svg" */
    const char *ctype; /* its media type */
    const unsigned char *data;
    size_t len;
};

/* Ended by an entry with a NULL name. */
extern const struct probe_image probe_images[];

#endif
