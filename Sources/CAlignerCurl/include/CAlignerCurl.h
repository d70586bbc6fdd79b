#ifndef ALIGNER_CURL_H
#define ALIGNER_CURL_H

#include <curl/curl.h>

/* curl_easy_setopt is variadic, which Swift cannot call. One typed setter per argument kind,
   as Foundation's CFURLSessionInterface does. */
CURLcode aligner_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode aligner_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode aligner_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode aligner_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value);

typedef size_t (*aligner_curl_write_callback)(char *data, size_t size, size_t count, void *context);
CURLcode aligner_curl_setopt_write_function(CURL *handle, aligner_curl_write_callback callback);
CURLcode aligner_curl_setopt_header_function(CURL *handle, aligner_curl_write_callback callback);

CURLcode aligner_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);

#endif
