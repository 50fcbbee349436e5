// Forwards to preprocessing/image.hpp (the preprocessing layer); kept so that existing includes work.
#pragma once

#include "preprocessing/image.hpp"
