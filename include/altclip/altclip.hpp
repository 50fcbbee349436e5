// altclip: AltCLIP (BAAI/AltCLIP, transformers' AltCLIPModel) on the CPU, header-only.
// The umbrella header; a program may include only the parts it uses
// (text.hpp + tokenizer.hpp for text alone, vision.hpp + image_processor.hpp for images).
#pragma once

#include "config.hpp"
#include "embedding.hpp"
#include "errors.hpp"
#include "format/container.hpp"
#include "format/model_file.hpp"
#include "inputs.hpp"
#include "isa.hpp"
#include "kernels/cpu.hpp"  // cpu_info()
#include "model.hpp"
#include "options.hpp"
#include "preprocessing/image.hpp"
#include "preprocessing/image_processor.hpp"
#include "preprocessing/tokenizer.hpp"
#include "processor.hpp"
#include "tensor.hpp"
#include "text.hpp"
#include "vision.hpp"
