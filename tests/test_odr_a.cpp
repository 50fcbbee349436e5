// Header-only hygiene: the umbrella header in two translation units of one program links
// (no multiply-defined symbols) and an inline function has one address across them.
#include <altclip/altclip.hpp>

const void* odr_layer_norm_address_a() { return reinterpret_cast<const void*>(&altclip::kernels::layer_norm); }
