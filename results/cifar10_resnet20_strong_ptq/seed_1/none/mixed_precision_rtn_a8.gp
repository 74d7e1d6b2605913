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
set grid
set key bottom right
set xlabel 'average weight bits'
set ylabel 'test accuracy (%)'
set title 'resnet20: mixed precision against uniform'
set terminal svg size 800,450 noenhanced
set output 'results/cifar10_resnet20_strong_ptq/seed_1/none/mixed_precision_rtn_a8.svg.tmp'
plot 'results/cifar10_resnet20_strong_ptq/seed_1/none/mixed_precision_rtn_a8.dat' index 0 with points pt 7 ps 1.2 lc rgb 'black' title 'uniform', 'results/cifar10_resnet20_strong_ptq/seed_1/none/mixed_precision_rtn_a8.dat' index 1 with linespoints lt 1 pt 4 title 'measured'
set output
set terminal pngcairo size 800,450 noenhanced
set output 'results/cifar10_resnet20_strong_ptq/seed_1/none/mixed_precision_rtn_a8.png.tmp'
plot 'results/cifar10_resnet20_strong_ptq/seed_1/none/mixed_precision_rtn_a8.dat' index 0 with points pt 7 ps 1.2 lc rgb 'black' title 'uniform', 'results/cifar10_resnet20_strong_ptq/seed_1/none/mixed_precision_rtn_a8.dat' index 1 with linespoints lt 1 pt 4 title 'measured'
set output
