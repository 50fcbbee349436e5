// Forwards to preprocessing/tokenizer.hpp (the preprocessing layer); kept so that existing includes work.
#pragma once

#include "preprocessing/tokenizer.hpp"
