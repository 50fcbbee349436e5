// Stands in for sentencepiece_processor.h in the tower_only_headers test (tests/tower_only.cpp): a tower header
// that includes it fails that test.
#error "a tower header includes sentencepiece_processor.h: the towers must compile without image decoding or the tokenizer"
