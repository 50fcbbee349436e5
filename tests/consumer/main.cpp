// Opens a model file and prints its projection size: proves the package can be consumed.
#include <iostream>

#include <altclip/model.hpp>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    try {
        const auto model = altclip::AltCLIPModel::from_file(argv[1]);
        std::cout << "projection_dim " << model.config().projection_dim << "\n";
        return 0;
    } catch (const altclip::Error& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
