// The README's example: classify one image against a few labels in ten lines,
// using only the public headers.
//   classify MODEL IMAGE LABEL [LABEL]...
#include <altclip/altclip.hpp>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 4) {
        std::cerr << "usage: classify MODEL IMAGE LABEL [LABEL]...\n";
        return 2;
    }
    try {
        auto file = altclip::ModelFile::open(argv[1]);  // mapped and validated, weights not copied
        altclip::AltCLIPModel model(file);
        altclip::AltCLIPProcessor processor(*file);
        const std::vector<std::string> labels(argv + 3, argv + argc);
        auto out = model.forward(processor(labels), processor.load_images({argv[2]}));
        for (std::size_t j = 0; j < labels.size(); ++j) {
            std::cout << labels[j] << "\t" << out.logits_per_image.data[j] << "\n";
        }
    } catch (const altclip::Error& e) {
        std::cerr << "classify: " << e.what() << "\n";
        return 1;
    }
}
