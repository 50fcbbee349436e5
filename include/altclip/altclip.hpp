// altclip: AltCLIP (BAAI/AltCLIP, transformers' AltCLIPModel) on the CPU, header-only.
// The umbrella header; a program may include only the parts it uses
// (text.hpp + tokenizer.hpp for text alone, vision.hpp + image_processor.hpp for images).
#pragma once

#include "config.hpp"
#include "embedding.hpp"
#include "container.hpp"
#include "errors.hpp"
#include "image.hpp"
#include "image_processor.hpp"
#include "isa.hpp"
#include "kernels/cpu.hpp"  // cpu_info()
#include "model.hpp"
#include "model_file.hpp"
#include "options.hpp"
#include "processor.hpp"
#include "tensor.hpp"
#include "text.hpp"
#include "tokenizer.hpp"
#include "vision.hpp"
