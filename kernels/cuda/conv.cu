// The copies a convolution makes of its input (kernels/conv.py): an im2col band's columns, Winograd's input tiles,
// the decoder's edge-replicated rows and its frame's taps. Each is a gather of pixels of a channels-last image
// that composed CuPy makes in two to five operations (a zeroed or edge-padded copy, assignments into it, a copy
// of a strided view of it); here it is one pass.

// out (size0 x size1 x size2 x size3 x channels, contiguous, fewer than 2^31 elements) gets at [i0, i1, i2, i3, c]
// channel c of pixel (item, row, column) = origin + i0 * step0 + i1 * step1 + i2 * step2 + i3 * step3 of the image
// (items x height x width) whose channels are first's first_channels, then second's (conv2d's inputs read as
// concatenated); beyond the image zero or, where `edge`, the nearest edge pixel's value. A thread per element of
// out, grid-stride, consecutive threads along its channels; the four divisions that find an element's place are
// Divisors (common.cuh): as divisions they took several times the instructions of the copy itself.
struct Steps {
    int item, row, column;
};

template <typename T>
__global__ void gather_pixels(const T* first, const T* second, T* out, int first_channels, int channel_count,
                              long long channels_magic, int height, int width, int item0, int row0, int column0,
                              int size1_count, long long size1_magic, int size2_count, long long size2_magic,
                              int size3_count, long long size3_magic, int item_step0, int row_step0,
                              int column_step0, int item_step1, int row_step1, int column_step1, int item_step2,
                              int row_step2, int column_step2, int item_step3, int row_step3, int column_step3,
                              int edge, int total) {
    // CuPy passes scalars, not structs: each Divisor as its divisor and magic number, each Steps as its three ints.
    const Divisor channels(channel_count, channels_magic), size1(size1_count, size1_magic),
        size2(size2_count, size2_magic), size3(size3_count, size3_magic);
    const Steps origin{item0, row0, column0}, step0{item_step0, row_step0, column_step0},
        step1{item_step1, row_step1, column_step1}, step2{item_step2, row_step2, column_step2},
        step3{item_step3, row_step3, column_step3};
    const int second_channels = channels.d - first_channels;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int c, i3, i2, i1;
        const int i0 = size1.divide(size2.divide(size3.divide(channels.divide((int)i, c), i3), i2), i1);
        const int item = origin.item + i0 * step0.item + i1 * step1.item + i2 * step2.item + i3 * step3.item;
        int row = origin.row + i0 * step0.row + i1 * step1.row + i2 * step2.row + i3 * step3.row;
        int column = origin.column + i0 * step0.column + i1 * step1.column + i2 * step2.column + i3 * step3.column;
        if (edge) {
            row = row < 0 ? 0 : row < height ? row : height - 1;
            column = column < 0 ? 0 : column < width ? column : width - 1;
        }
        T value = 0;
        if (row >= 0 && row < height && column >= 0 && column < width) {
            const long long pixel = ((long long)item * height + row) * width + column;
            value = c < first_channels ? first[pixel * first_channels + c]
                                       : second[pixel * second_channels + c - first_channels];
        }
        out[i] = value;
    }
}
