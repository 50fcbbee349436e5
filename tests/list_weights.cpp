// altclip_list_weights MODEL_FILE: loads the model file as AltCLIPModel does and prints, one per
// line and sorted, the tensor keys the C++ loader asked for (detail::requested_tensor_log).
// tools/tests/test_schema.py compares them with the converter's schema (tools/altclip_convert/
// schema.py), so the two spellings of the model's tensors cannot drift apart.
// Exit status: 0 when the model loaded, 1 when the loader reported a problem (the message goes
// to stderr; the keys are printed all the same), 2 on bad usage.
#include <iostream>
#include <set>
#include <string>

#include <altclip/altclip.hpp>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: altclip_list_weights MODEL_FILE\n";
        return 2;
    }
    std::set<std::string> asked;
    altclip::detail::requested_tensor_log() = &asked;
    int status = 0;
    try {
        altclip::ModelOptions options;
        options.num_threads = 1;
        altclip::AltCLIPModel model(altclip::ModelFile::open(argv[1]), options);
    } catch (const altclip::Error& e) {
        std::cerr << e.what() << "\n";
        status = 1;
    }
    altclip::detail::requested_tensor_log() = nullptr;
    for (const std::string& key : asked) std::cout << key << "\n";
    return status;
}
