// The README's example: classify one image against a few labels, using the public headers
// (and cli::printable, which escapes control characters in names printed on the terminal).
//   classify MODEL IMAGE LABEL [LABEL]...
// prints one line per label, in the order given: LABEL <tab> logit <tab> probability, then
// the most probable label: "top: LABEL".
#include <altclip/altclip.hpp>
#include <algorithm>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"

int main(int argc, char** argv) {
    const char* usage =
        "usage: classify MODEL IMAGE LABEL [LABEL]...\n"
        "Prints LABEL<tab>logit<tab>probability for each label (in the order given), then \"top: LABEL\".\n";
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            std::cout << usage;
            return 0;
        }
    }
    if (argc < 4) {
        std::cerr << "classify: error: give a model, an image and at least one label\n" << usage;
        return 2;
    }
    try {
        auto file = altclip::ModelFile::open(argv[1]);  // mapped and validated, weights not copied
        altclip::AltCLIPModel model(file);
        altclip::AltCLIPProcessor processor(*file);
        const std::vector<std::string> labels(argv + 3, argv + argc);
        auto out = model.forward(processor(labels), processor.load_images({argv[2]}));
        auto probs = out.probs_per_image();  // softmax of logits_per_image: [1, labels]
        for (std::size_t j = 0; j < labels.size(); ++j) {
            std::cout << cli::printable(labels[j]) << "\t" << out.logits_per_image.data[j] << "\t" << probs.data[j] << "\n";
        }
        const auto best = std::max_element(probs.data.begin(), probs.data.end()) - probs.data.begin();
        std::cout << "top: " << cli::printable(labels[static_cast<std::size_t>(best)]) << "\n";
    } catch (const altclip::Error& e) {
        std::cerr << "classify: " << cli::printable(e.what()) << "\n";
        return 1;
    }
}
