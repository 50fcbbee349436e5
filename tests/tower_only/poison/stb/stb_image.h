// Stands in for stb/stb_image.h in the tower_only_headers test (tests/tower_only.cpp): a tower header
// that includes it fails that test.
#error "a tower header includes stb/stb_image.h: the towers must compile without image decoding or the tokenizer"
