set linetype 1 lc rgb '#1f77b4'
set linetype 2 lc rgb '#ff7f0e'
set linetype 3 lc rgb '#2ca02c'
set linetype 4 lc rgb '#d62728'
set linetype 5 lc rgb '#9467bd'
set linetype 6 lc rgb '#8c564b'
set linetype 7 lc rgb '#e377c2'
set linetype 8 lc rgb '#7f7f7f'
set linetype 9 lc rgb '#bcbd22'
set linetype 10 lc rgb '#17becf'
set linetype 11 lc rgb '#000000'
set linetype 12 lc rgb '#aec7e8'
set linetype cycle 12
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:100]
set grid ytics
set ylabel 'accuracy (%)'
set xtics rotate by -60 font ',8'
set key outside top center horizontal
set title 'resnet8 at 4 bits: float 87.71, all quantized 66.23' noenhanced
set terminal svg size 800,450 noenhanced
set output 'results/fashion_mnist_quick/seed_1/none/sensitivity_all_layers_test.svg.tmp'
plot 'results/fashion_mnist_quick/seed_1/none/sensitivity_all_layers_test.dat' using 2:xtic(1) title 'only this element quantized' lt 1, '' using 3 title 'all but this element quantized' lt 2
set output
set terminal pngcairo size 800,450 noenhanced
set output 'results/fashion_mnist_quick/seed_1/none/sensitivity_all_layers_test.png.tmp'
plot 'results/fashion_mnist_quick/seed_1/none/sensitivity_all_layers_test.dat' using 2:xtic(1) title 'only this element quantized' lt 1, '' using 3 title 'all but this element quantized' lt 2
set output
