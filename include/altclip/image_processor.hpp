// Forwards to preprocessing/image_processor.hpp (the preprocessing layer); kept so that existing includes work.
#pragma once

#include "preprocessing/image_processor.hpp"
